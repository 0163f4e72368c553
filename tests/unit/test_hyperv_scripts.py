"""Every generated script against its golden file, and the rules the reference sets
for them (research/hyperv.md §0): parameters bound, never spliced; module-qualified
cmdlets; one JSON document out, made by the envelope only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import assert_golden
from whimbrel.drivers.hyperv.scripts import ENVELOPE, names, script

GOLDEN = Path(__file__).parent.parent / "golden" / "hyperv"
HYPERV = re.compile(
    r"(?<![\\\w-])((?:Get|Set|Add|Remove|Move|Start|Stop|Save|Suspend|Resume|New|"
    r"Compare|Enable|Disable|Connect|Update)-VM\w*)\b"
)
CLUSTER = re.compile(r"(?<![\\\w-])((?:Get|Add|Remove|Move|Suspend|Resume)-Cluster\w*)\b")


def test_every_script_has_a_golden_file_and_no_more() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.ps1")) == names()


@pytest.mark.parametrize("name", names())
def test_script_matches_its_golden_file(name: str) -> None:
    text = script(name).text
    assert_golden(GOLDEN / f"{name}.ps1", text)


@pytest.mark.parametrize("name", names())
def test_script_follows_the_rules(name: str) -> None:
    s = script(name)
    body = s.text.split("try {", 1)[1].split("    $answer =", 1)[0]
    assert s.text.lstrip("#").split("\n")[0], "a comment says what it does"
    assert "$ErrorActionPreference = 'Stop'" in s.text
    assert "$result = " in body, "the body leaves its answer in $result"
    assert "ConvertTo-Json" not in body and "Invoke-Expression" not in body
    assert "$args" not in body and "@args" not in body  # automatic variable, not ours
    assert not HYPERV.findall(body), "Hyper-V cmdlets are written Hyper-V\\..."
    assert not CLUSTER.findall(body), "cluster cmdlets are written FailoverClusters\\..."
    for p in s.params:
        assert re.search(rf"\${p}\b", body), f"parameter {p} is never used"


def test_envelope_answers_success_and_failure_in_one_shape() -> None:
    assert "ok = $true; data = $result" in ENVELOPE
    for key in ("message", "hresult", "fqid", "category", "inner"):
        assert f"{key} = $e." in ENVELOPE or f"{key} = if" in ENVELOPE


def test_rules_catch_a_bad_script() -> None:
    bad = "    $x = Get-VM -Name $Name\n    $y = Get-ClusterNode\n"
    assert HYPERV.findall(bad) == ["Get-VM"] and CLUSTER.findall(bad) == ["Get-ClusterNode"]
    assert not HYPERV.findall("Hyper-V\\Get-VM") and not CLUSTER.findall(
        "FailoverClusters\\Get-ClusterNode"
    )
