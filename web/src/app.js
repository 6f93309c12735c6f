// Rising Stars on the web: a hash router and one function per page. Data only from the public
// API (docs/api-contract.md) on this same origin.
import { ApiError, authed, logout, nextLink, onSessionChange, open, signedIn, login } from "./api.js";
import { field, h, seconds, votes } from "./dom.js";

const main = document.getElementById("main");
const PAGE = 12;
// While something of the player's waits for processing, "Mis videos" asks again this often.
const POLL_MS = 2000;
// The rankings come from a cache up to a minute old (the API's); asking every 10 s is enough.
const RANKING_POLL_MS = 10000;
// Videos seen in the showcase, so their page opens without asking again.
const seen = new Map();

let leave = () => {};

const routes = [
  [/^\/$/, showcase],
  [/^\/v\/([\w-]+)$/, videoPage],
  [/^\/ranking$/, ranking],
  [/^\/entrar$/, loginPage],
  [/^\/registro$/, signupPage],
  [/^\/mis-videos$/, myVideos],
  [/^\/subir$/, uploadPage],
];

function parse() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path, params: new URLSearchParams(query) };
}

export function go(path) {
  location.hash = `#${path}`;
}

async function route() {
  leave();
  const { path, params } = parse();
  const controller = new AbortController();
  leave = () => controller.abort();
  for (const [pattern, view] of routes) {
    const match = path.match(pattern);
    if (match) {
      markCurrent(path);
      await view({ params, arg: match[1], signal: controller.signal });
      return;
    }
  }
  render("Página no encontrada", h("p", {}, "Esa página no existe. ", h("a", { href: "#/" }, "Volver a la vitrina")));
}

function markCurrent(path) {
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#${path}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

/** Replace the page: its title, its heading, and focus on it (what a screen reader announces). */
function render(title, ...content) {
  document.title = `${title} · Rising Stars`;
  const heading = h("h1", { tabindex: "-1" }, title);
  main.replaceChildren(heading, ...content);
  if (location.hash) heading.focus({ preventScroll: true });
}

function status(live = "polite") {
  return h("p", { class: "status", role: live === "assertive" ? "alert" : "status", "aria-live": live });
}

function sessionLink(isIn) {
  const item = document.getElementById("session-link");
  item.replaceChildren(
    isIn
      ? h("button", { type: "button", class: "linklike", onclick: async () => { await logout(); go("/"); } }, "Salir")
      : h("a", { href: "#/entrar" }, "Entrar"),
  );
}

function wait(ms, signal) {
  return new Promise((resolve) => {
    const id = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(id); resolve(); }, { once: true });
  });
}

function cityForm(city, onCity) {
  const input = h("input", { id: "city", name: "city", type: "search", value: city, autocomplete: "address-level2", placeholder: "p. ej. Bogotá" });
  return h(
    "form",
    { role: "search", class: "city", onsubmit: (e) => { e.preventDefault(); onCity(input.value.trim()); } },
    h("label", { for: "city" }, "Ciudad"),
    input,
    h("button", { type: "submit" }, "Filtrar"),
  );
}

// --- The showcase -------------------------------------------------------------------------

async function showcase({ params, signal }) {
  const city = params.get("ciudad") || "";
  const grid = h("ul", { class: "grid", "aria-label": "Videos" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Ver más videos");
  const note = status();
  render(
    city ? `Vitrina de ${city}` : "Vitrina",
    h("p", { class: "lead" }, "Los videos de los jugadores. Mira, vota y sigue el ranking de tu ciudad."),
    cityForm(city, (c) => go(c ? `/?ciudad=${encodeURIComponent(c)}` : "/")),
    grid,
    more,
    note,
  );
  const first = new URLSearchParams({ limit: String(PAGE) });
  if (city) first.set("city", city);
  let next = `/api/public/videos?${first}`;
  const load = async () => {
    more.disabled = true;
    note.textContent = "Cargando videos…";
    try {
      const response = await open("GET", next, { raw: true });
      const items = await response.json();
      if (signal.aborted) return;
      for (const video of items) grid.append(card(video, grid.children.length === 0));
      next = nextLink(response);
      more.hidden = !next;
      note.textContent = grid.children.length ? "" : "Aún no hay videos publicados aquí.";
    } catch (error) {
      note.textContent = error.message;
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
}

// Thumbnails are most of a first visit's bytes (a processed video's picture is 1280×720): a
// picture is fetched only when its card comes near the screen. The browser's own lazy loading
// starts 1250 px or more below the fold, which on a phone is the whole first page.
const nearScreen = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      entry.target.src = entry.target.dataset.src;
      nearScreen.unobserve(entry.target);
    }
  },
  { rootMargin: "150px 0px" },
);

function thumbnail(url, first) {
  if (!url) return h("span", { class: "nothumb" });
  // The first picture is the page's largest paint: asked for at once.
  const img = h("img", { alt: "", width: 640, height: 360, decoding: "async", fetchpriority: first ? "high" : null });
  if (first) img.src = url;
  else {
    img.dataset.src = url;
    nearScreen.observe(img);
  }
  return img;
}

function card(video, first) {
  seen.set(video.video_id, video);
  return h(
    "li",
    { class: "card" },
    h(
      "a",
      { href: `#/v/${video.video_id}` },
      thumbnail(video.thumbnail_url, first),
      h("span", { class: "title" }, video.title),
    ),
    h("p", { class: "meta" }, `${video.username} · ${video.city} · ${votes(video.votes)}`),
  );
}

// --- A video's page -----------------------------------------------------------------------

async function findPublic(id) {
  if (seen.has(id)) return seen.get(id);
  // No public route reads one video: walk the public list (bounded) until it shows up.
  let next = "/api/public/videos?limit=100";
  for (let page = 0; next && page < 5; page += 1) {
    const response = await open("GET", next, { raw: true });
    for (const video of await response.json()) seen.set(video.video_id, video);
    if (seen.has(id)) return seen.get(id);
    next = nextLink(response);
  }
  return null;
}

async function videoPage({ arg: id }) {
  render("Video", h("p", {}, "Cargando…"));
  let video;
  try {
    video = await findPublic(id);
  } catch (error) {
    render("Video", h("p", { role: "alert" }, error.message));
    return;
  }
  if (!video) {
    render("Video no encontrado", h("p", {}, "Este video no existe o aún no está publicado. ", h("a", { href: "#/" }, "Volver a la vitrina")));
    return;
  }
  const count = h("span", {}, votes(video.votes));
  const note = status();
  const button = h("button", { type: "button", class: "vote" }, "Votar por este video");
  button.addEventListener("click", async () => {
    if (!signedIn()) {
      go(`/entrar?volver=${encodeURIComponent(`/v/${id}`)}&motivo=votar`);
      return;
    }
    button.disabled = true;
    try {
      const answer = await authed("POST", `/api/public/videos/${id}/vote`);
      video.votes += 1;
      count.textContent = votes(video.votes);
      note.textContent = answer.message;
    } catch (error) {
      note.textContent = error.status === 401 ? "Tu sesión terminó: vuelve a entrar para votar." : error.message;
    } finally {
      button.disabled = false;
    }
  });
  render(
    video.title,
    h("video", { controls: true, playsinline: true, preload: "metadata", poster: video.thumbnail_url, src: video.processed_url, width: 1280, height: 720, "aria-label": `Video: ${video.title}` }),
    h("p", { class: "meta" }, `${video.username} · ${video.city} · `, count),
    button,
    note,
    h("p", {}, h("a", { href: `#/ranking?ciudad=${encodeURIComponent(video.city)}` }, `Ranking de ${video.city}`)),
  );
}

// --- Rankings -----------------------------------------------------------------------------

async function ranking({ params, signal }) {
  const city = params.get("ciudad") || "";
  const body = h("tbody");
  const note = status();
  render(
    city ? `Ranking de ${city}` : "Ranking",
    cityForm(city, (c) => go(c ? `/ranking?ciudad=${encodeURIComponent(c)}` : "/ranking")),
    h(
      "table",
      { class: "ranking" },
      h("caption", {}, "Jugadores por votos recibidos; se actualiza solo."),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Puesto"), h("th", { scope: "col" }, "Jugador"), h("th", { scope: "col" }, "Ciudad"), h("th", { scope: "col" }, "Votos"))),
      body,
    ),
    note,
  );
  const query = new URLSearchParams({ limit: "50" });
  if (city) query.set("city", city);
  while (!signal.aborted) {
    try {
      const rows = await open("GET", `/api/public/rankings?${query}`);
      if (signal.aborted) return;
      body.replaceChildren(...rows.map((r) => h("tr", {}, h("td", {}, r.position), h("th", { scope: "row" }, r.username), h("td", {}, r.city), h("td", {}, r.votes))));
      note.textContent = rows.length ? "" : "Aún no hay votos aquí.";
    } catch (error) {
      note.textContent = error.message;
    }
    await wait(RANKING_POLL_MS, signal);
  }
}

// --- Accounts -----------------------------------------------------------------------------

function errorBox() {
  return h("p", { class: "error", role: "alert" });
}

async function loginPage({ params }) {
  const back = params.get("volver") || "/mis-videos";
  const problem = errorBox();
  const intro = params.get("motivo") === "votar" ? "Inicia sesión para votar." : params.get("creada") ? "Cuenta creada. Ya puedes entrar." : null;
  const form = h(
    "form",
    { class: "stack" },
    field("Correo electrónico", { name: "email", type: "email", autocomplete: "email", required: true, value: params.get("email") || "" }),
    field("Contraseña", { name: "password", type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit" }, "Entrar"),
    problem,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    const data = new FormData(form);
    try {
      await login(data.get("email"), data.get("password"));
      go(back.startsWith("/") ? back : "/");
    } catch (error) {
      problem.textContent = error.message;
    }
  });
  render("Entrar", intro ? h("p", { class: "lead" }, intro) : null, form, h("p", {}, "¿No tienes cuenta? ", h("a", { href: "#/registro" }, "Regístrate")));
}

async function signupPage() {
  const problem = errorBox();
  const form = h(
    "form",
    { class: "stack" },
    field("Nombre", { name: "first_name", autocomplete: "given-name", required: true }),
    field("Apellido", { name: "last_name", autocomplete: "family-name", required: true }),
    field("Correo electrónico", { name: "email", type: "email", autocomplete: "email", required: true }),
    field("Nombre de usuario (opcional)", { name: "username", autocomplete: "username" }, "Así te verá el público en el ranking."),
    field("Contraseña", { name: "password1", type: "password", autocomplete: "new-password", required: true, minlength: 8 }, "Al menos 8 caracteres."),
    field("Repite la contraseña", { name: "password2", type: "password", autocomplete: "new-password", required: true }),
    field("Ciudad", { name: "city", autocomplete: "address-level2", required: true }),
    field("País", { name: "country", autocomplete: "country-name", required: true }),
    h("button", { type: "submit" }, "Crear cuenta"),
    problem,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.textContent = "";
    const body = Object.fromEntries(new FormData(form));
    if (!body.username) delete body.username;
    try {
      await open("POST", "/api/auth/signup", { body });
      go(`/entrar?creada=1&email=${encodeURIComponent(body.email)}`);
    } catch (error) {
      problem.textContent = error.message;
    }
  });
  render("Crear cuenta", form, h("p", {}, "¿Ya tienes cuenta? ", h("a", { href: "#/entrar" }, "Entra")));
}

function needsLogin(path) {
  if (signedIn()) return false;
  go(`/entrar?volver=${encodeURIComponent(path)}`);
  return true;
}

// --- The player's videos ------------------------------------------------------------------

const PENDING = new Set(["uploaded", "processing"]);

/** A video's state in words. */
export function stateText(video) {
  switch (video.status) {
    case "uploaded": {
      const q = video.queue;
      if (!q || q.position === null || q.position === undefined) return "En cola para procesarse.";
      const eta = seconds(q.eta_seconds);
      const place = q.position === 0 ? "es el siguiente" : `posición ${q.position} en la cola`;
      return `En espera: ${place}${eta ? `, listo en unos ${eta}` : ""}.`;
    }
    case "processing": {
      const eta = seconds(video.queue && video.queue.eta_seconds);
      return `Procesando${eta ? `: listo en unos ${eta}` : "…"}`;
    }
    case "processed":
      return "Publicado: ya se puede ver y votar.";
    case "rejected":
      return `Rechazado: ${video.failure_reason || "el archivo no cumple las reglas."}`;
    case "failed":
      return `No se pudo procesar: ${video.failure_reason || "inténtalo de nuevo."}`;
    default:
      return video.status;
  }
}

async function myVideos({ signal }) {
  if (needsLogin("/mis-videos")) return;
  const list = h("ul", { class: "mine" });
  const note = status();
  render("Mis videos", h("p", {}, h("a", { href: "#/subir", class: "button" }, "Subir un video")), list, note);
  while (!signal.aborted) {
    let videos;
    try {
      videos = await authed("GET", "/api/videos");
    } catch (error) {
      note.textContent = error.message;
      if (error.status === 401) return;
      await wait(POLL_MS * 3, signal);
      continue;
    }
    if (signal.aborted) return;
    list.replaceChildren(...videos.map((v) => mine(v, note)));
    note.textContent = videos.length ? "" : "Aún no has subido videos.";
    if (!videos.some((v) => PENDING.has(v.status))) return;
    await wait(POLL_MS, signal);
  }
}

function mine(video, note) {
  const actions = [];
  if (video.status === "processed") actions.push(h("a", { href: `#/v/${video.video_id}` }, "Ver video"));
  else {
    actions.push(
      h("button", {
        type: "button",
        class: "secondary",
        "aria-label": `Eliminar ${video.title}`,
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            note.textContent = (await authed("DELETE", `/api/videos/${video.video_id}`)).message;
            event.target.closest("li").remove();
          } catch (error) {
            note.textContent = error.message;
            event.target.disabled = false;
          }
        },
      }, "Eliminar"),
    );
  }
  return h(
    "li",
    { "data-status": video.status },
    h("h2", {}, video.title),
    h("p", { class: "state" }, stateText(video)),
    h("p", { class: "actions" }, actions),
  );
}

// --- Upload -------------------------------------------------------------------------------

async function uploadPage({ signal }) {
  if (needsLogin("/subir")) return;
  render("Subir un video", h("p", {}, "Cargando…"));
  const { uploadForm } = await import("./upload.js");
  if (signal.aborted) return;
  render(
    "Subir un video",
    h("p", { class: "lead" }, "MP4 de 20 a 60 segundos, con el lado corto de al menos 1080 píxeles y hasta 100 MB. Si se corta la red, la subida sigue donde quedó."),
    uploadForm({ signal, stateText }),
  );
}

// The skip link's own "#main" would be a route: move the focus instead.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
onSessionChange(sessionLink);
sessionLink(signedIn());
window.addEventListener("hashchange", route);
route().catch((error) => render("Error", h("p", { role: "alert" }, error instanceof ApiError ? error.message : "Algo salió mal.")));
