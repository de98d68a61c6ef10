"""Text a trainer sent (run names, log lines, reasons), made safe to print on a terminal."""
from __future__ import annotations

# Bidi controls reorder what a terminal shows (the "Trojan Source" trick); shown as escapes like control characters.
_BIDI = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def safe(text: str, *, lines: bool = True) -> str:
    """`text` (a run name, a log line: anything a trainer sent) as it may reach a terminal: control characters (the
    ESC that starts a terminal sequence such as an OSC 8 hyperlink, CR, BEL, ...) and bidi controls are shown as
    escapes (``\\x1b``), never sent. Tabs are kept, and newlines when `lines` (else shown as ``\\n``). Rich
    markup needs nothing here: tables print cells as `rich.text.Text`, never parsed for markup."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\t" or (ch == "\n" and lines):
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in _BIDI:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)
