"""Tool calls inside generated text: the model writes a call, a tool writes its result.

A task declares a tool and its call syntax. In GSM8K's own style the model writes
``<<48/2=`` (the start marker, the call's input, the end marker); generation pauses,
the tool computes ``24``, and ``24>>`` (the result and the close marker) is put into
the text, which the model then continues: ``<<48/2=24>>24 clips``.

Nothing the model writes is executed. The calculator parses its input against a
whitelist (``deliberate.calculator``); input it rejects gets an error string in place
of a result (``<<48/0=error: division by zero>>``), and the text goes on.

Backends run calls in ``generate_with_tools`` (``deliberate.backends.tool_calls``).
The default, ``continue_after_tools``, works on any backend through plain ``generate``
calls, one continuation request per call. ``LlamaBackend`` runs them inside its decode
loop instead: the result's tokens are appended to the same sequence, so a call costs
only those tokens of prefill.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from deliberate.calculator import evaluate
from deliberate.errors import CalculatorError

MAX_CALLS = 16  # tool calls in one sample; later calls are left to the model
MAX_INPUT_TOKENS = 48  # a call's input longer than this is not a call (see continue_after_tools)


@dataclass(frozen=True)
class ToolCall:
    """One call made while a sample was generated."""

    tool: str
    input: str  # what the model wrote between the markers
    output: str  # what the tool wrote (an error string when it refused the input)
    ok: bool  # False when ``output`` is an error string
    prefill: int = 0  # prompt tokens the backend decoded to continue after this call
    # The model's own log-probability of the tokens the tool wrote (its result and the
    # close marker), as if it had written them: how well it could have done this
    # arithmetic itself. None unless the request asked (``GenerateRequest.score_tools``)
    # and the backend can tell (not ``continue_after_tools``).
    logprob: float | None = None

    def record(self) -> dict[str, object]:
        """The call as node and trace data."""
        return {"tool": self.tool, "input": self.input, "output": self.output, "ok": self.ok, "prefill": self.prefill,
                "logprob": self.logprob}


@dataclass(frozen=True)
class ToolSyntax:
    """A tool and how calls to it are written: ``start`` input ``end`` output ``close``."""

    name: str
    start: str
    end: str
    close: str
    run: Callable[[str], tuple[str, bool]]  # input -> (output, ok); never raises
    max_calls: int = MAX_CALLS

    def open_call(self, text: str) -> int | None:
        """Where the input of a call still open at the end of ``text`` begins, or None.

        A call is open when the last start marker has no close marker after it.
        """
        at = text.rfind(self.start)
        if at < 0 or self.close in text[at + len(self.start) :]:
            return None
        return at + len(self.start)

    def finished_call(self, text: str) -> tuple[str, int] | None:
        """The input of a call whose end marker ``text`` has just written, and the index
        right after that end marker (text beyond it is the model guessing the result).
        None when no open call has met its end marker."""
        begin = self.open_call(text)
        if begin is None:
            return None
        end = text.find(self.end, begin)
        if end < 0:
            return None
        return text[begin:end], end + len(self.end)

    def call(self, input_text: str) -> ToolCall:
        output, ok = self.run(input_text)
        return ToolCall(self.name, input_text, output, ok)

    def written(self, call: ToolCall) -> str:
        """The text the tool writes after the end marker."""
        return call.output + self.close


def decimal(value: Fraction, places: int = 6) -> str:
    """``24``, ``0.5``, ``2.333333``: how GSM8K writes a calculator's result."""
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.{places}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def calculate(expression: str) -> tuple[str, bool]:
    """The calculator as a tool: its result in decimal, or ``error: ...``."""
    try:
        return decimal(evaluate(expression.replace(",", "").replace("$", ""))), True
    except CalculatorError as exc:
        return f"error: {exc}", False


# GSM8K's calculator annotation: the model writes "<<48/2=", the calculator "24>>".
CALCULATOR = ToolSyntax("calculator", "<<", "=", ">>", calculate)
