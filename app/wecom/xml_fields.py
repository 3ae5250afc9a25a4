"""WeCom XML → nested dicts, in one bounded pass.

Decrypted callbacks (and the sandbox's envelopes) are read here, so the read must cost
time in proportion to the body and stop early on a hostile one: expat runs over the whole
buffer in one call (feeding it in pieces makes a large token cost quadratic time), counts
elements and depth as it meets them and stops at the first one over the limit, collects
repeated tags by appending, and never reports attributes, comments or processing
instructions to Python. DTDs (and with them every entity declaration) are refused the
moment one starts.
"""

from __future__ import annotations

from typing import Any, NoReturn
from xml.parsers import expat

from app.errors import MalformedCallbackError

XmlData = dict[str, Any]

# A decrypted message: WeCom's are two levels deep at most (MemChangeList/Item,
# SendPicsInfo/PicList/item) and hold a few dozen elements; the largest list, a group's
# member changes, is bounded by the group size (at most 2,000 members).
MAX_DEPTH = 8
MAX_ELEMENTS = 4096
# Character data is handed over in pieces of this size, not one call per text node,
# character reference or CDATA section.
_TEXT_BUFFER = 1 << 16


class _Element:
    __slots__ = ("fields", "tag", "text")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.text: list[str] | None = []
        self.fields: XmlData | None = None

    def value(self) -> Any:
        if self.fields is not None:
            return self.fields
        return "".join(self.text or ()).strip()


class _Reader:
    """Expat handlers that build the dict as elements close; stack depth = nesting."""

    def __init__(self, *, max_elements: int, max_depth: int) -> None:
        self._max_elements = max_elements
        self._max_depth = max_depth
        self._elements = 0
        self._stack: list[_Element] = []
        self.root: _Element | None = None

    def start(self, tag: str, _attributes: object) -> None:
        self._elements += 1
        if self._elements > self._max_elements:
            raise MalformedCallbackError(f"XML has more than {self._max_elements} elements")
        if len(self._stack) > self._max_depth:
            raise MalformedCallbackError("XML nested too deeply")
        if self._stack:
            parent = self._stack[-1]
            if parent.fields is None:
                parent.fields, parent.text = {}, None  # text beside children is not a value
        self._stack.append(_Element(tag))

    def end(self, _tag: str) -> None:
        element = self._stack.pop()
        if not self._stack:
            self.root = element
            return
        fields = self._stack[-1].fields
        assert fields is not None
        value = element.value()
        previous = fields.get(element.tag)
        if previous is None:
            fields[element.tag] = value
        elif isinstance(previous, list):  # values are str or dict: a list is a repeat
            previous.append(value)
        else:
            fields[element.tag] = [previous, value]

    def text(self, data: str) -> None:
        if self._stack:
            chunks = self._stack[-1].text
            if chunks is not None:
                chunks.append(data)


def _refuse_dtd(*_args: object) -> NoReturn:
    raise MalformedCallbackError("XML refused: DTDs and entities are not allowed")


def _parser(reader: _Reader) -> Any:
    parser = expat.ParserCreate()
    parser.buffer_text = True
    parser.buffer_size = _TEXT_BUFFER
    parser.ordered_attributes = True  # a list is cheaper to build than a dict
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    return parser


def parse_xml(
    text: str | bytes, *, max_elements: int = MAX_ELEMENTS, max_depth: int = MAX_DEPTH
) -> XmlData:
    """Parse a WeCom XML document into a dict: a leaf is its stripped text, an element
    with children a dict, a repeated tag a list. Refuse DTDs, entities, and documents
    over `max_elements` elements or nested deeper than `max_depth` below the root."""
    reader = _Reader(max_elements=max_elements, max_depth=max_depth)
    try:
        _parser(reader).Parse(text, True)
    except expat.ExpatError as exc:
        raise MalformedCallbackError(f"not well-formed XML: {exc}") from exc
    except (UnicodeError, ValueError) as exc:
        raise MalformedCallbackError(f"not well-formed XML: {type(exc).__name__}") from exc
    root = reader.root
    if root is None or root.fields is None:
        raise MalformedCallbackError("XML document has no fields")
    return root.fields
