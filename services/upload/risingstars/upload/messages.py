"""What clients read (Spanish, per the API contract)."""

from __future__ import annotations

UPLOADED = "Video subido correctamente. Procesamiento en curso."
DELETED = "El video ha sido eliminado exitosamente."
VOTED = "Voto registrado exitosamente."
ALREADY_VOTED = "Ya has votado por este video"
UPLOAD_CANCELLED = "La carga ha sido cancelada."

NOT_FOUND = "Video no encontrado"
UPLOAD_NOT_FOUND = "Carga no encontrada"
FORBIDDEN = "No tiene permiso para acceder a este video"
UPLOAD_FORBIDDEN = "No tiene permiso para acceder a esta carga"
ALREADY_PUBLIC = "El video ya es público para votación y no puede eliminarse"

NOT_MULTIPART = "La petición debe ser multipart/form-data con los campos video_file y title"
BAD_MULTIPART = "El cuerpo multipart/form-data está mal formado o incompleto"
MISSING_FILE = "Campo requerido: video_file"
MISSING_TITLE = "Campo requerido: title"
DUPLICATE_FILE = "Solo se admite un archivo en video_file"
BAD_TITLE = "El título debe tener entre 1 y 200 caracteres y ningún carácter de control"
FIELD_TOO_LARGE = "Los campos del formulario son demasiado grandes"
NOT_MP4 = "El archivo no es un video MP4 válido"
TRUNCATED = "El archivo MP4 está incompleto o dañado"
MOOV_TOO_LARGE = "El archivo MP4 tiene una cabecera demasiado grande"
OWN_VOTE = "No puedes votar por tu propio video"
INVALID_CURSOR = "Parámetro inválido: after"
INVALID_CITY = "Parámetro inválido: city"
BAD_SIZE = "Campo inválido: size: debe ser mayor que 0"
COMPLETE_TOO_SLOW = "La carga no pudo completarse a tiempo. Intente de nuevo más tarde."
UPLOADS_BUSY = "El servicio está recibiendo demasiadas cargas. Intente de nuevo en unos segundos."
CLIENT_GONE = "La conexión se cerró antes de terminar la carga"
STORAGE_DOWN = "El almacenamiento no está disponible. Intente de nuevo más tarde."


def missing_parts(numbers: list[int]) -> str:
    return f"Faltan partes por subir: {', '.join(map(str, numbers))}"


def wrong_parts(numbers: list[int]) -> str:
    return "Estas partes no tienen el tamaño esperado y deben subirse de nuevo: " + ", ".join(
        map(str, numbers)
    )


def daily_quota(limit: int) -> str:
    return f"Has alcanzado el máximo de {limit} videos subidos en 24 horas. Intenta más tarde."


def open_uploads(limit: int) -> str:
    return (
        f"Tienes {limit} cargas directas sin completar: completa o cancela alguna antes de "
        "empezar otra"
    )


def too_large(limit: int) -> str:
    return f"El archivo supera el tamaño máximo permitido de {limit / 1_048_576:g} MB"


def too_many_uploads(limit: int) -> str:
    return f"Ya tiene {limit} cargas en curso; espere a que terminen antes de iniciar otra"


def upload_idle(seconds: float) -> str:
    return f"No se recibieron datos durante {seconds:g} s: la carga se canceló. Intente de nuevo."


def upload_deadline(seconds: float) -> str:
    return f"La carga superó el tiempo máximo de {seconds:g} s y se canceló. Intente de nuevo."


def bad_duration(seconds: float, low: float, high: float) -> str:
    return (
        f"La duración del video ({seconds:.1f} s) está fuera del rango permitido "
        f"({low:g}–{high:g} s)"
    )


def bad_resolution(width: int, height: int, minimum: int) -> str:
    return (
        f"La resolución del video ({width}x{height}) es insuficiente: "
        f"el lado menor debe ser de al menos {minimum} px"
    )


# Why a video was not processed, per `risingstars.jobs.Reason` code (finding 10.14): what the
# owner reads; the processor's English detail stays in the logs.
FAILURES = {
    "not_a_video": "El archivo no contiene un video que se pueda procesar",
    "picture_too_large": "La resolución del video es mayor que la admitida para procesarlo",
    "frame_rate_too_high": "La frecuencia de cuadros del video es mayor que la admitida",
    "too_slow": "El video tardó demasiado en procesarse y fue descartado",
    "output_too_large": "El video procesado supera el tamaño máximo admitido",
    "source_missing": "El archivo original ya no existe",
    "invalid_job": "El video no pudo procesarse por un error interno",
    "processing_failed": "El video no pudo procesarse. Intente subirlo de nuevo.",
    "abandoned": "El procesamiento se interrumpió en todos los intentos. Intente subirlo de nuevo.",
}


def failure(code: str | None) -> str | None:
    """The owner's message for a stored reason code (older rows hold free text: generic)."""
    if code is None:
        return None
    return FAILURES.get(code, FAILURES["processing_failed"])


# tus resumable uploads (routes/tus.py)
TUS_EXPIRED = "La carga expiró; empiece una nueva"
TUS_COMPLETE = "La carga ya está completa"
TUS_COMPLETE_DELETE = "La carga ya está completa; borre el video en su lugar"
TUS_BUSY = "Otra petición está enviando datos a esta carga; intente de nuevo en unos segundos"
TUS_RACE = "Otra petición modificó esta carga al mismo tiempo"
TUS_PAST_LENGTH = "El cuerpo supera Upload-Length"
TUS_TAIL_UNREADABLE = "No se pudo leer la carga; intente de nuevo"
TUS_METADATA_TOO_LONG = "Upload-Metadata es demasiado largo"
TUS_METADATA_INVALID = "Upload-Metadata inválido"
TUS_MISSING_TITLE = "Upload-Metadata debe incluir el título del video (title)"
TUS_DEFER_LENGTH = "Upload-Defer-Length no está soportado: envíe Upload-Length"
TUS_EMPTY = "Upload-Length debe ser mayor que 0"
TUS_VERSION = "Se requiere la cabecera Tus-Resumable: 1.0.0"
TUS_CONTENT_TYPE = "Content-Type debe ser application/offset+octet-stream"


def tus_metadata_not_base64(key: str) -> str:
    return f"Upload-Metadata inválido: {key} no está en base64"


def tus_open_uploads(count: int) -> str:
    return f"Tiene {count} cargas sin terminar: termine o cancele alguna antes de empezar otra"


def tus_offset(expected: int) -> str:
    return f"Upload-Offset debe ser {expected}"


def tus_whole_number(header: str) -> str:
    return f"La cabecera {header} es obligatoria y debe ser un entero no negativo"
