"""Writes the Python types of the commands and events from their Avro schemas.

`python -m schemas.typegen` rewrites schemas/commands.py, schemas/events.py and
schemas/records.py (the records nested in them) from schemas/avsc/*.avsc; the schemas stay
the contract and the types follow them, so the two cannot drift (tests/unit/test_typed.py
fails when the files are not what this writes). A schema whose `doc` begins with
"Command" is a command, with "Event" an event; the others (the envelope, the reply, a
mailbox entry) are the transport's records and get no type.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.registry import SCHEMA_DIR

OUT = Path(__file__).parent
HEADER = '''"""{doc}

Written by `python -m schemas.typegen` from schemas/avsc/; edit the schemas, not this file.
"""

from __future__ import annotations

from dataclasses import dataclass
'''
DOCS = {
    "records": "The records nested in commands and events, one type per Avro record name.",
    "commands": "The commands, one frozen type per Avro schema: what a decider is asked.",
    "events": "The events, one frozen type per Avro schema: what a decider appends.",
}
_PRIMITIVES = {"string": "str", "bytes": "bytes", "long": "int", "int": "int", "boolean": "bool"}


def kind(schema: dict[str, Any]) -> str | None:
    doc = str(schema.get("doc", ""))
    if doc.startswith("Command"):
        return "commands"
    if doc.startswith("Event"):
        return "events"
    return None


@dataclass
class Module:
    classes: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)


@dataclass
class Generator:
    records: Module = field(default_factory=Module)
    nested: dict[str, str] = field(default_factory=dict)  # name -> its class text

    def python_type(self, schema: Any, into: Module) -> str:
        if isinstance(schema, list):
            others = [s for s in schema if s != "null"]
            if len(others) != 1 or len(others) == len(schema):
                raise ValueError(f"only optional unions are typed: {schema}")
            return f"{self.python_type(others[0], into)} | None"
        if isinstance(schema, str):
            return _PRIMITIVES[schema]
        if schema.get("logicalType") == "timestamp-millis":
            into.imports.add("from datetime import datetime")
            return "datetime"
        if schema["type"] == "array":
            return f"tuple[{self.python_type(schema['items'], into)}, ...]"
        if schema["type"] == "record":
            text = self.record(schema, self.records)
            known = self.nested.setdefault(schema["name"], text)
            if known != text:
                raise ValueError(f"record {schema['name']} is defined twice, differently")
            if into is not self.records:
                into.imports.add(schema["name"])
            return str(schema["name"])
        return _PRIMITIVES[schema["type"]]

    def record(self, schema: dict[str, Any], into: Module) -> str:
        lines = [
            "",
            "",
            "@dataclass(frozen=True, slots=True, kw_only=True)",
            f"class {schema['name']}:",
        ]
        if schema.get("doc"):
            lines.append(f'    """{_wrap(schema["doc"], 4)}"""')
            lines.append("")
        for f in schema["fields"]:
            if f.get("doc"):
                lines += [f"    # {line}" for line in _lines(f["doc"], 4 + 2)]
            annotation = self.python_type(f["type"], into)
            default = f" = {_default(f['default'])}" if "default" in f else ""
            lines.append(f"    {f['name']}: {annotation}{default}")
        return "\n".join(lines) + "\n"

    def add(self, schema: dict[str, Any], into: Module) -> None:
        into.classes.append(self.record(schema, into))
        into.names.append(schema["name"])


def _default(value: Any) -> str:
    if isinstance(value, list):
        if value:
            raise ValueError("only empty array defaults are typed")
        return "()"
    return repr(value)


def _lines(text: str, indent: int, width: int = 100) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and indent + len(line) + 1 + len(word) > width - 2:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def _wrap(text: str, indent: int) -> str:
    lines = _lines(text, indent + 6)  # the quotes on both sides
    if len(lines) == 1:
        return lines[0]
    return ("\n" + " " * indent).join(lines) + "\n" + " " * indent


def render(directory: Path = SCHEMA_DIR) -> dict[str, str]:
    """The text of each generated module, by file stem."""
    gen = Generator()
    modules = {"commands": Module(), "events": Module()}
    for path in sorted(directory.glob("*.avsc")):
        schema = json.loads(path.read_text())
        found = kind(schema)
        if found is not None:
            gen.add(schema, modules[found])
    gen.records.classes = [gen.nested[name] for name in sorted(gen.nested)]
    gen.records.names = sorted(gen.nested)
    out = {"records": _module("records", gen.records)}
    for stem, module in modules.items():
        out[stem] = _module(stem, module)
    return out


def _module(stem: str, module: Module) -> str:
    text = HEADER.format(doc=DOCS[stem])
    std = sorted(i for i in module.imports if i.startswith("from "))
    nested = sorted(i for i in module.imports if not i.startswith("from "))
    if std:
        text = text.replace(
            "from dataclasses import dataclass\n",
            "from dataclasses import dataclass\n" + "".join(f"{i}\n" for i in std),
        )
    if nested:
        text += "\nfrom schemas.records import " + ", ".join(nested) + "\n"
    text += "".join(module.classes)
    if stem != "records":
        kind_name = "Command" if stem == "commands" else "Event"
        text += f"\n\n{kind_name} = (\n" + "".join(
            f"    {'| ' if n else ''}{name}\n" for n, name in enumerate(module.names)
        )
        text += ")\n"
        text += f"\nTYPES: dict[str, type[{kind_name}]] = {{\n"
        text += "".join(f'    "{name}": {name},\n' for name in module.names)
        text += "}\n"
    return text


def formatted(text: str) -> str:
    """`text` as the project's formatter lays it out, so the files pass `ruff format`."""
    beside = Path(sys.executable).parent / "ruff"
    ruff = str(beside) if beside.exists() else shutil.which("ruff") or "ruff"
    return subprocess.run(
        [ruff, "format", "--stdin-filename", "generated.py", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def main() -> int:
    for stem, text in render().items():
        (OUT / f"{stem}.py").write_text(formatted(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
