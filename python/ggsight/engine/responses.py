"""Response objects shaped like Ollama's (attribute or item access)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class _Response:
    done: bool = False
    done_reason: str | None = None
    tokens: list = field(default_factory=list)        # generated token ids
    prompt_eval_count: int = 0
    eval_count: int = 0
    total_duration: int = 0                            # nanoseconds, as Ollama reports them
    load_duration: int = 0
    prompt_eval_duration: int = 0
    eval_duration: int = 0

    def __getitem__(self, key):
        return getattr(self, key)

    def get(self, key, default=None):
        return getattr(self, key, default)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GenerateResponse(_Response):
    response: str = ""

    @property
    def text(self) -> str:
        return self.response

    def set_text(self, text: str) -> None:
        self.response = text


@dataclass
class ChatResponse(_Response):
    message: dict = field(default_factory=lambda: {"role": "assistant", "content": ""})

    @property
    def text(self) -> str:
        return self.message["content"]

    def set_text(self, text: str) -> None:
        self.message = {"role": "assistant", "content": text}


def collect(events, kind, load_duration: int):
    """The final response (of class `kind`) of a generation's events, with all their text."""
    pieces = []
    for event in events:
        if isinstance(event, tuple):
            pieces.append(event[0])
        else:
            final = event
    final.set_text("".join(pieces))
    final.load_duration = load_duration
    return final


def stream_events(events, kind, load_duration: int):
    """A generation's events as streamed responses: text chunks, then the final one."""
    for event in events:
        if isinstance(event, tuple):
            chunk = kind(done=False)
            chunk.set_text(event[0])
            yield chunk
        else:
            event.set_text("")
            event.load_duration = load_duration
            yield event
