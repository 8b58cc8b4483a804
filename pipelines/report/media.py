"""Embedding: bytes as ``data:`` URIs and rendered examples as HTML snippets (no external URL)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from .figures import spectrogram_image
from .samples import Rendered

MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "bmp": "image/bmp", "webp": "image/webp", "wav": "audio/wav", "flac": "audio/flac",
        "ogg": "audio/ogg", "mp3": "audio/mpeg", "txt": "text/plain", "csv": "text/csv",
        "json": "application/json"}


def data_uri(data: bytes, extension: str) -> str:
    mime = MIME.get(extension.lower().lstrip("."), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def file_uri(path: Path) -> str:
    return data_uri(Path(path).read_bytes(), Path(path).suffix)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def img_tag(uri: str, alt: str, cls: str = "", title: str = "") -> str:
    extra = f' class="{cls}"' if cls else ""
    extra += f' title="{esc(title)}"' if title else ""
    return f'<img src="{uri}" alt="{esc(alt)}"{extra}>'


def audio_tag(uri: str, label: str, cls: str = "") -> str:
    extra = f' class="{cls}"' if cls else ""
    return f'<audio controls preload="metadata" src="{uri}" aria-label="{esc(label)}"{extra}></audio>'


def spectrogram_uri(item: Rendered) -> str:
    wave, rate = item.waveform()
    return data_uri(spectrogram_image(wave, rate), "png")


def snippet(item: Rendered, label: str, spectrogram: bool = True) -> str:
    """HTML for one rendered example: an image, an audio player (with its spectrogram), text, or a file."""
    kind = item.kind
    if kind == "image":
        return img_tag(data_uri(item.data, item.extension), label, "thumb", label)
    if kind == "audio":
        player = audio_tag(data_uri(item.data, item.extension), label)
        if not spectrogram:
            return player
        return (f'<div class="clip">{img_tag(spectrogram_uri(item), "spectrogram of " + label, "spec")}'
                f"{player}</div>")
    if kind == "text":
        return f'<span class="gen-text">{esc(item.text()) or "&#8709;"}</span>'
    name = f"{label}.{item.extension}"
    return (f'<a class="file" download="{esc(name)}" href="{data_uri(item.data, item.extension)}">'
            f"{esc(name)} ({len(item.data)} bytes)</a>")
