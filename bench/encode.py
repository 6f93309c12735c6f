"""`make bench ENTRY=encode`: what the processor's ffmpeg command costs against the picture it
makes, one row per setting of its levers, on the ~50 MB 2560x1440 input of bench/processor.py.

Every row is the processor's own command (media.encode_command, so the output rules hold: 30 s
of content fitted to 1280x720 at 30 fps, no audio, logo cards, watermark, faststart, thumbnail)
with one or more levers changed. Per row:
- CPU seconds of the ffmpeg run (user + system of the child: steady on a shared machine, where
  wall time is not) and its wall time; `per_min_2c` is 120 / CPU-s, the videos per minute two
  idle cores would encode;
- SSIM and PSNR (ffmpeg's own filters) of the 30 s of content against a reference encode of the
  same rules with preset slow, lanczos scaling and CRF 18; VMAF (libvmaf, when this ffmpeg has
  it) for the rows marked with it, every 3rd frame over the whole 30 s;
- the output's size.
The reference is made once and cached in .bench/encode/.

First, where the CPU goes: today's command and the default built up stage by stage (decode,
scale+pad, watermark, x264 on the content, the cards, the thumbnail, faststart), each stage's
own CPU-s as `BENCH encode.stage.<name>_cpu_s` (a stage below noise can come out negative).

BENCH_ENCODE_QUICK=1 runs only today's command, the default and the cheap-CPU point
(ultrafast_crf27_cap4000k), without the stages;
BENCH_ENCODE_ROWS=a,b picks rows by name. Figures: `BENCH encode.<row>.<cpu_s|wall_s|ssim|psnr|
vmaf|mb>` and the ratios of the default to today's command from the same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from bench import printer
from bench.processor import make_input
from risingstars.processor import media
from risingstars.processor.settings import ASSETS, Settings

CACHE = Path(__file__).resolve().parents[1] / ".bench" / "encode"
CONTENT = (round(media.CARD_SECONDS * media.FPS), round(media.CARD_SECONDS * media.FPS) + 900)
REFERENCE_CRF = 18

TODAY = media.Encoding(
    card=str(ASSETS / "card.png"), watermark=str(ASSETS / "watermark.png"), thumbnail_at=1.0
)


def _default() -> media.Encoding:
    settings = Settings(s3_bucket="b", jobs_queue_url="q", events_queue_url="q")
    return media.Encoding.of(settings)


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    encoding: media.Encoding
    vmaf: bool = False


def rows() -> list[Row]:
    r = dataclasses.replace
    t = TODAY
    return [
        Row("today", t, vmaf=True),
        Row("default", _default(), vmaf=True),
        # One lever at a time from today's command. Decoding (-flags2 +fast is allowed to
        # bend the spec; skip_loop_filter does, on the source's B-frames only).
        Row("decode_flags2_fast", r(t, decoder=("-flags2", "+fast"))),
        Row("decode_skip_loop_filter_bidir", r(t, decoder=("-skip_loop_filter", "bidir"))),
        # Scaling.
        Row("scaler_area", r(t, scaler="area")),
        Row("scaler_fast_bilinear", r(t, scaler="fast_bilinear")),
        # x264: CRF and the cap traded for the SSIM of today's command.
        Row("ultrafast_crf25", r(t, preset="ultrafast", crf=25)),
        Row("ultrafast_crf27_nocap", r(t, preset="ultrafast", crf=27)),
        Row("ultrafast_crf23_cap3000k", r(t, preset="ultrafast", crf=23, maxrate_kbps=3000)),
        # The cheapest CPU at today's SSIM (the default until its bytes were priced).
        Row(
            "ultrafast_crf27_cap4000k",
            r(t, preset="ultrafast", crf=27, maxrate_kbps=4000, threads=2),
            vmaf=True,
        ),
    ]


say = printer("encode", digits=4)


def note(text: str) -> None:
    print(f"# {text}", flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def encode(ffmpeg: str, source: Path, encoding: media.Encoding, out: Path) -> dict:
    return _run(media.encode_command(ffmpeg, source, out, out.with_suffix(".jpg"), encoding))


def check_rules(ffmpeg: str, video: Path) -> None:
    """The output rules the tests check in detail, checked again for every row."""
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-i", str(video)], capture_output=True, text=True
    )
    info = media.parse_probe(result.stderr, "frame=1")
    problems = []
    if (info.width, info.height) != (media.WIDTH, media.HEIGHT) or info.has_audio:
        problems.append(f"{info.width}x{info.height}, audio {info.has_audio}")
    if abs((info.duration or 0) - 35.0) > 0.1:
        problems.append(f"{info.duration} s")
    head = video.read_bytes()[: 1 << 20]
    if head.find(b"moov") < 0 or head.find(b"moov") > head.find(b"mdat"):
        problems.append("index not at the front")
    if not video.with_suffix(".jpg").stat().st_size:
        problems.append("no thumbnail")
    if problems:
        raise RuntimeError(f"{video.name} breaks the output rules: {problems}")


def _content(index: int) -> str:
    first, end = CONTENT
    return f"[{index}:v]trim=start_frame={first}:end_frame={end},setpts=PTS-STARTPTS"


def quality(ffmpeg: str, video: Path, reference: Path, vmaf: bool) -> dict:
    graph = f"{_content(0)},split=2[a1][a2];{_content(1)},split=2[b1][b2];[a1][b1]ssim;[a2][b2]psnr"
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(video), "-i", str(reference),
         "-filter_complex", graph, "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = {
        "ssim": float(re.search(r"SSIM .*All:([\d.]+)", result.stderr)[1]),
        "psnr": float(re.search(r"PSNR .*average:([\d.inf]+)", result.stderr)[1]),
    }
    if vmaf:
        result = subprocess.run(
            [ffmpeg, "-hide_banner", "-nostdin", "-i", str(video), "-i", str(reference),
             "-filter_complex", f"{_content(0)}[a];{_content(1)}[b];"
             "[a][b]libvmaf=n_subsample=3:n_threads=2",
             "-f", "null", "-"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        found["vmaf"] = float(re.search(r"VMAF score: ([\d.]+)", result.stderr)[1])
    return found


def has_vmaf(ffmpeg: str) -> bool:
    result = subprocess.run(
        [ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True, check=True
    )
    return re.search(r"\blibvmaf\b", result.stdout) is not None


def reference(ffmpeg: str, source: Path) -> Path:
    encoding = dataclasses.replace(TODAY, preset="slow", scaler="lanczos", crf=REFERENCE_CRF)
    command = media.encode_command(ffmpeg, source, Path("out.mp4"), Path("out.jpg"), encoding)
    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout
    key = hashlib.sha256(
        "\0".join([*command[1:], source.name, str(source.stat().st_size), version]).encode()
    ).hexdigest()[:16]
    path = CACHE / f"reference-{key}.mp4"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        note("making the reference encode (slow, lanczos); cached for later runs")
        partial = path.with_suffix(".part.mp4")
        encode(ffmpeg, source, encoding, partial)
        partial.with_suffix(".jpg").unlink(missing_ok=True)
        partial.rename(path)
    return path


def stages(ffmpeg: str, source: Path, encoding: media.Encoding, tmp: Path) -> list[tuple]:
    """The command built up stage by stage; each stage's cost is its run's minus the previous
    run's (CPU-s over the same 30 s of source, 900 frames)."""
    e = encoding
    head = media.source_args(ffmpeg, source, e)
    card = ["-framerate", str(media.FPS), "-i", e.card]
    mark = ["-i", e.watermark]
    fit = media.fit_chain(e.scaler, e.scale_first)
    out = str(tmp / "stage.mp4")
    x264 = [*media.x264_args(e), "-f", "mp4", out]
    thumb = ["-map", "[thumb]", "-update", "1", "-q:v", "3", "-f", "image2", str(tmp / "s.jpg")]
    null = ["-f", "null", "-"]
    # The card stays input 1 (unused before the cards stage), so the watermark is input 2.
    marked = ";".join([fit, f"{media.WATERMARK}[main]"])
    with_cards = ";".join([fit, f"{media.WATERMARK}[main]", media.cards_chain(), media.CONCAT])
    full = media.filter_graph(e.thumbnail_at, e.scaler, e.scale_first)
    return [
        ("decode", [*head, "-map", "0:V:0", "-an", *null]),
        ("scale_pad", [*head, "-filter_complex", fit, "-map", "[fit]", "-an", *null]),
        ("watermark", [*head, *card, *mark, "-filter_complex", marked, "-map", "[main]", *null]),
        ("x264_content", [*head, *card, *mark, "-filter_complex", marked, "-map", "[main]", *x264]),
        ("cards", [*head, *card, *mark, "-filter_complex", with_cards, "-map", "[video]", *x264]),
        ("thumbnail", [*head, *card, *mark, "-filter_complex", full, "-map", "[video]", *x264,
                       *thumb]),
        ("faststart", media.encode_command(ffmpeg, source, Path(out), tmp / "s.jpg", e)),
    ]  # fmt: skip


def profile(ffmpeg: str, source: Path, encoding: media.Encoding, tmp: Path) -> None:
    """Where one video's CPU-seconds go, stage by stage (BENCH encode.stage.<name>_cpu_s is
    the stage's own share)."""
    before = 0.0
    note("| stage (cumulative command) | CPU-s | stage's own CPU-s | wall s |")
    note("|---|---|---|---|")
    for name, command in stages(ffmpeg, source, encoding, tmp):
        cost = _run(command)
        say(f"stage.{name}_cpu_s", cost["cpu"] - before, "s")
        note(f"| {name} | {cost['cpu']:.1f} | {cost['cpu'] - before:+.1f} | {cost['wall']:.1f} |")
        before = cost["cpu"]


def _run(command: list[str]) -> dict:
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(command, check=True)
    return {"cpu": _children_cpu() - cpu, "wall": time.perf_counter() - started}


def run() -> None:
    ffmpeg = media.locate_ffmpeg(os.environ.get("FFMPEG_PATH") or None)
    source = make_input("50mb")
    ref = reference(ffmpeg, source)
    vmaf = has_vmaf(ffmpeg)
    selected = rows()
    if os.environ.get("BENCH_ENCODE_QUICK"):
        selected = [
            row for row in selected if row.name in ("today", "default", "ultrafast_crf27_cap4000k")
        ]
    if wanted := os.environ.get("BENCH_ENCODE_ROWS"):
        names = set(wanted.split(","))
        selected = [row for row in selected if row.name in names]
    note(f"input {source.stat().st_size / 1e6:.1f} MB 2560x1440; {os.cpu_count()} CPUs, "
         f"load average {os.getloadavg()[0]:.2f}: CPU seconds are the steady figure")  # fmt: skip
    note(f"libvmaf {'available' if vmaf else 'not in this ffmpeg'}")
    table = []
    with tempfile.TemporaryDirectory(prefix="bench-encode-") as tmp:
        if not os.environ.get("BENCH_ENCODE_QUICK"):
            note("where today's command spends its CPU (each stage adds to the previous):")
            profile(ffmpeg, source, TODAY, Path(tmp))
            note("and the default's:")
            profile(ffmpeg, source, _default(), Path(tmp))
        for row in selected:
            out = Path(tmp) / f"{row.name}.mp4"
            cost = encode(ffmpeg, source, row.encoding, out)
            check_rules(ffmpeg, out)
            found = quality(ffmpeg, out, ref, vmaf and row.vmaf)
            found.update(cost, mb=out.stat().st_size / 1e6)
            table.append((row.name, found))
            for metric in ("cpu", "wall"):
                say(f"{row.name}.{metric}_s", found[metric], "s")
            for metric in ("ssim", "psnr", "vmaf", "mb"):
                if metric in found:
                    say(f"{row.name}.{metric}", found[metric])
            out.unlink()
    results = dict(table)
    if "today" in results and "default" in results:
        today, best = results["today"], results["default"]
        say("default_cpu_vs_today", best["cpu"] / today["cpu"])
        say("default_ssim_minus_today", best["ssim"] - today["ssim"])
    print_table(table)


def print_table(table: list[tuple[str, dict]]) -> None:
    note("| row | CPU-s | wall s | videos/min, 2 idle cores | SSIM | PSNR dB | VMAF | MB |")
    note("|---|---|---|---|---|---|---|---|")
    for name, f in table:
        vmaf = f"{f['vmaf']:.2f}" if "vmaf" in f else ""
        note(
            f"| {name} | {f['cpu']:.1f} | {f['wall']:.1f} | {120 / f['cpu']:.1f} | "
            f"{f['ssim']:.4f} | {f['psnr']:.2f} | {vmaf} | {f['mb']:.1f} |"
        )
