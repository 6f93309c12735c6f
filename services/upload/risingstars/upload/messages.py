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
BAD_TITLE = "El título debe tener entre 1 y 200 caracteres"
FIELD_TOO_LARGE = "Los campos del formulario son demasiado grandes"
NOT_MP4 = "El archivo no es un video MP4 válido"
TRUNCATED = "El archivo MP4 está incompleto o dañado"
MOOV_TOO_LARGE = "El archivo MP4 tiene una cabecera demasiado grande"
STORAGE_DOWN = "El almacenamiento no está disponible. Intente de nuevo más tarde."
DATABASE_DOWN = "La base de datos no está disponible. Intente de nuevo más tarde."
# A job the processor never finished in any attempt (it stopped during each one).
ABANDONED = "El procesamiento se interrumpió en todos los intentos"


def too_large(limit: int) -> str:
    return f"El archivo supera el tamaño máximo permitido de {limit / 1_048_576:g} MB"


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
