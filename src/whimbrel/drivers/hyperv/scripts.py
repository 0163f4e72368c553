"""The PowerShell scripts the driver runs, one small file per operation.

Each file in ``ps1/`` starts with its ``param()`` block; :func:`script` wraps the rest in
one envelope (``$ErrorActionPreference = 'Stop'``, a try/catch, one compressed
JSON document out) so that every operation answers in the same two shapes::

    {"ok": true,  "data": ...}
    {"ok": false, "error": {"message", "type", "hresult", "fqid", "category", "inner"}}

Values reach a script only as bound parameters (pypsrp ``add_parameters``),
never spliced into its text: the text of a script never changes, which is
what the golden files under ``tests/golden/hyperv/`` pin down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_PARAM_RE = re.compile(r"^param\((.*?)\)\s*$", re.S | re.M)
_NAME_RE = re.compile(r"\]\s*\$([A-Za-z]\w*)")

ENVELOPE = """\
{param}
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {{
    # Dot-sourced, so $result stays in this scope; whatever a cmdlet writes to the
    # output on its way (a compatibility report, a cluster group) is dropped: the one
    # output is the JSON below.
    $null = . {{
{body}
    }}
    $answer = [pscustomobject]@{{ ok = $true; data = $result }}
    ConvertTo-Json -Compress -Depth 6 -InputObject $answer
}} catch {{
    $e = $_
    ConvertTo-Json -Compress -Depth 4 -InputObject ([pscustomobject]@{{
        ok = $false
        error = [pscustomobject]@{{
            message = $e.Exception.Message
            type = $e.Exception.GetType().FullName
            hresult = $e.Exception.HResult
            fqid = $e.FullyQualifiedErrorId
            category = $e.CategoryInfo.Category.ToString()
            inner = if ($e.Exception.InnerException) {{
                $e.Exception.InnerException.Message
            }} else {{ $null }}
        }}
    }})
}}
"""


@dataclass(frozen=True)
class Script:
    name: str
    text: str
    params: tuple[str, ...]


def names() -> list[str]:
    return sorted(
        p.name[:-4]
        for p in resources.files("whimbrel.drivers.hyperv").joinpath("ps1").iterdir()
        if p.name.endswith(".ps1")
    )


@cache
def script(name: str) -> Script:
    src = resources.files("whimbrel.drivers.hyperv").joinpath(f"ps1/{name}.ps1").read_text()
    lines = src.splitlines()
    n = next((i for i, ln in enumerate(lines) if not ln.startswith("#")), len(lines))
    comments, code = lines[:n], "\n".join(lines[n:])  # the header says what it does
    m = _PARAM_RE.search(code)
    if m is None:
        raise ValueError(f"script {name} has no param() block")
    param = code[: m.end()].strip()
    body = code[m.end() :].strip("\n")
    params = tuple(_NAME_RE.findall(" ".join(m.group(1).split())))
    text = (
        "\n".join(comments)
        + "\n"
        + ENVELOPE.format(
            param=param, body="\n".join("        " + ln if ln else ln for ln in body.splitlines())
        )
    )
    return Script(name, text, params)
