// Uploads FILE with tus-js-client (a third-party tus 1.0 client), resuming an earlier upload of
// the same file if STORE remembers one. With STOP_AFTER it kills itself (SIGKILL, mid-request)
// once that many bytes are sent, as a dropped laptop would. Prints {"url", "video_id"}.
// usage: node upload.js FILE ENDPOINT TOKEN STORE [STOP_AFTER]
const fs = require("fs");
const tus = require("tus-js-client");

const [file, endpoint, token, store, stopAfter] = process.argv.slice(2);
const size = fs.statSync(file).size;
let videoId = null;

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  uploadSize: size,
  chunkSize: 2 * 1024 * 1024,
  metadata: { title: "Desde tus-js-client", filename: "clip.mp4" },
  headers: { Authorization: `Bearer ${token}` },
  urlStorage: new tus.FileUrlStorage(store),
  fingerprint: async () => `${file}:${size}`,
  retryDelays: [0, 500, 1000, 2000],
  onProgress(sent) {
    if (stopAfter && sent >= Number(stopAfter)) process.kill(process.pid, "SIGKILL");
  },
  onAfterResponse(_request, response) {
    videoId = response.getHeader("Video-Id") || videoId;
  },
  onError(error) {
    console.error(String(error));
    process.exit(1);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, video_id: videoId }));
  },
});

upload.findPreviousUploads().then((previous) => {
  if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
  upload.start();
});
