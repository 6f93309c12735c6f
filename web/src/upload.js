// Upload by tus (resumable), loaded only on the upload page: tus-js-client is most of the app's
// bytes and no visitor who only watches and votes needs it.
import { accessToken, authed } from "./api.js";
import { h } from "./dom.js";

// Small enough that a phone on a flaky network loses little when a request breaks, large enough
// that a 100 MB file is a few dozen requests.
const CHUNK_BYTES = 5 * 1024 * 1024;
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000];
const STATUS_POLL_MS = 2000;

let loading = null;

function loadTus() {
  // tus-js-client's browser build is a classic script that defines `window.tus`.
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "tus.min.js";
      script.onload = () => resolve(window.tus);
      script.onerror = () => { loading = null; reject(new Error("No se pudo cargar el módulo de subida.")); };
      document.head.append(script);
    });
  }
  return loading;
}

/** The reason in an error answer's JSON, or a sentence for a broken connection. */
function reason(error) {
  const response = error && error.originalResponse;
  if (response) {
    try {
      const payload = JSON.parse(response.getBody());
      if (payload && typeof payload.detail === "string") return payload.detail;
    } catch {
      // not JSON
    }
    return `El servidor rechazó la subida (error ${response.getStatus()}).`;
  }
  return "Se perdió la conexión con el servidor.";
}

export function uploadForm({ signal, stateText }) {
  const title = h("input", { id: "title", name: "title", required: true, maxlength: 200, autocomplete: "off" });
  const file = h("input", { id: "file", name: "file", type: "file", accept: "video/mp4,.mp4", required: true });
  const bar = h("progress", { id: "progress", max: 100, value: 0, "aria-label": "Progreso de la subida" });
  const percent = h("span", { id: "progress-label" }, "0 %");
  // Shown once an upload starts.
  const progress = h("div", { class: "progress", hidden: true }, bar, percent);
  const pause = h("button", { type: "button", class: "secondary", hidden: true }, "Pausar");
  const resume = h("button", { type: "button", hidden: true }, "Reanudar");
  const submit = h("button", { type: "submit" }, "Subir");
  const note = h("p", { class: "status", role: "status", "aria-live": "polite" });
  const problem = h("p", { class: "error", role: "alert" });
  const result = h("p", { class: "state", "aria-live": "polite" });
  let upload = null;

  const online = () => {
    if (upload) {
      note.textContent = "Conexión recuperada: la subida continúa donde quedó.";
      upload.start();
    }
  };
  window.addEventListener("online", online);
  signal.addEventListener("abort", () => {
    window.removeEventListener("online", online);
    if (upload) upload.abort();
  });

  const setPaused = (paused) => {
    pause.hidden = paused;
    resume.hidden = !paused;
  };

  pause.addEventListener("click", () => {
    upload.abort();
    setPaused(true);
    note.textContent = "Subida en pausa.";
    resume.focus();
  });
  resume.addEventListener("click", () => {
    setPaused(false);
    note.textContent = "Subiendo…";
    upload.start();
    pause.focus();
  });

  const follow = async (videoId) => {
    // The video's state in words until it is processed or refused.
    while (!signal.aborted) {
      try {
        const video = await authed("GET", `/api/videos/${videoId}`);
        result.replaceChildren(stateText(video));
        if (video.status === "processed") {
          result.append(" ", h("a", { href: `#/v/${videoId}` }, "Ver video"));
          return;
        }
        if (video.status === "failed" || video.status === "rejected") return;
      } catch (error) {
        result.textContent = error.message;
      }
      await new Promise((r) => setTimeout(r, STATUS_POLL_MS));
    }
  };

  const form = h(
    "form",
    { class: "stack upload" },
    h("div", { class: "field" }, h("label", { for: "title" }, "Título"), title),
    h("div", { class: "field" }, h("label", { for: "file" }, "Archivo de video (MP4)"), file),
    submit,
    progress,
    h("p", { class: "actions" }, pause, resume),
    note,
    problem,
    result,
  );

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    result.textContent = "";
    const chosen = file.files[0];
    if (!chosen) return;
    let tus;
    try {
      tus = await loadTus();
    } catch (error) {
      problem.textContent = error.message;
      return;
    }
    submit.disabled = true;
    progress.hidden = false;
    upload = new tus.Upload(chosen, {
      endpoint: "/api/videos/tus/",
      chunkSize: CHUNK_BYTES,
      retryDelays: RETRY_DELAYS,
      metadata: { title: title.value.trim(), filename: chosen.name, filetype: chosen.type || "video/mp4" },
      // A reload keeps the upload's address (localStorage); choosing the same file resumes it.
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onBeforeRequest: async (request) => {
        request.setHeader("Authorization", `Bearer ${await accessToken()}`);
      },
      onProgress: (sent, total) => {
        const value = total ? Math.floor((sent / total) * 100) : 0;
        bar.value = value;
        percent.textContent = `${value} %`;
      },
      onError: (error) => {
        if (!navigator.onLine) {
          note.textContent = "Sin conexión: la subida seguirá donde quedó cuando vuelva la red.";
          return;
        }
        setPaused(true);
        pause.hidden = true;
        resume.hidden = true;
        submit.disabled = false;
        note.textContent = "";
        problem.textContent = reason(error);
        upload = null;
      },
      onSuccess: ({ lastResponse }) => {
        pause.hidden = true;
        resume.hidden = true;
        submit.disabled = false;
        bar.value = 100;
        percent.textContent = "100 %";
        note.textContent = "Video subido correctamente. Procesamiento en curso.";
        const videoId = lastResponse.getHeader("Video-Id");
        upload = null;
        if (videoId) follow(videoId);
      },
    });
    const previous = await upload.findPreviousUploads();
    if (previous.length) {
      upload.resumeFromPreviousUpload(previous[0]);
      note.textContent = "Retomando la subida anterior de este archivo…";
    } else {
      note.textContent = "Subiendo…";
    }
    setPaused(false);
    upload.start();
  });
  return form;
}
