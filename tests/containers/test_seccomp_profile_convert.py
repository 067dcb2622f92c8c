"""Docker's default seccomp profile and the Docker-format -> OCI conversion, decided per container."""

import json
from pathlib import Path
from typing import Any

import pytest

from hull.containers.defaults import DEFAULT_CAPABILITIES
from hull.containers.seccomp_profile import (
    ALLOWED_SYSCALLS,
    CLONE_NAMESPACE_FLAGS,
    default_profile,
    parse_security_opt_profile,
    to_oci,
)
from hull.errors import InvalidArgument

pytestmark = pytest.mark.unit

X86 = {"machine": "x86_64", "kernel_release": "6.1.0-13-amd64"}


def allowed(section: dict[str, Any]) -> set[str]:
    """The calls allowed unconditionally."""
    return {n for s in section["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" and not s.get("args") for n in s["names"]}


def rules_for(section: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in section["syscalls"] if name in s["names"]]


def test_default_for_dockers_default_capabilities() -> None:
    oci = to_oci(default_profile(), DEFAULT_CAPABILITIES, **X86)
    assert oci["defaultAction"] == "SCMP_ACT_ERRNO"
    assert oci["defaultErrnoRet"] == 1  # EPERM
    assert oci["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert oci["syscalls"][0]["names"] == list(ALLOWED_SYSCALLS)
    ok = allowed(oci)
    assert {"read", "execve", "ptrace", "arch_prctl", "modify_ldt", "chroot"} <= ok
    # What only CAP_SYS_ADMIN and the other capabilities Docker does not grant would allow.
    assert not {"mount", "umount2", "unshare", "setns", "process_vm_readv", "reboot", "kcmp", "iopl"} & ok
    assert rules_for(oci, "clone") == [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}],
        }
    ]
    assert rules_for(oci, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    personas = [s["args"][0]["value"] for s in rules_for(oci, "personality")]
    assert personas == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    assert all(len(s["args"]) == 1 and s["args"][0]["op"] == "SCMP_CMP_EQ" for s in rules_for(oci, "personality"))


def test_capability_groups_follow_the_bounding_set() -> None:
    caps = [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]
    oci = to_oci(default_profile(), caps, **X86)
    ok = allowed(oci)
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3", "process_vm_readv", "kcmp"} <= ok
    assert all("args" not in s for s in rules_for(oci, "clone"))  # no flag check with CAP_SYS_ADMIN
    assert not rules_for(oci, "clone3")[0].get("errnoRet")
    assert "chroot" not in allowed(to_oci(default_profile(), ["CAP_CHOWN"], **X86))


def test_architecture_and_kernel_conditions() -> None:
    s390 = to_oci(default_profile(), [], machine="s390x", kernel_release="5.10.0")
    assert s390["architectures"] == ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
    assert [s["args"][0]["index"] for s in rules_for(s390, "clone")] == [1]  # flags are clone's 2nd argument there
    assert "s390_runtime_instr" in allowed(s390)
    assert "arch_prctl" not in allowed(s390)
    arm = to_oci(default_profile(), [], machine="aarch64", kernel_release="5.10.0")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "set_tls" in allowed(arm)
    old = to_oci(default_profile(), [], machine="x86_64", kernel_release="4.4.0-generic")
    assert "ptrace" not in allowed(old)  # before 4.8 ptrace could get around seccomp


def test_custom_profile_conditions() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_FOWNER"]}},
            {"names": ["chown"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_FOWNER", "CAP_CHOWN"]}},
            {"names": ["sync"], "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": "5.0"}},
        ],
    }
    oci = to_oci(profile, ["CAP_CHOWN"], **X86)
    assert oci == {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    assert [s["names"] for s in to_oci(profile, ["CAP_FOWNER", "CAP_CHOWN"], **X86)["syscalls"]] == [
        ["mkdir"],
        ["chown"],
    ]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"defaultAction": "SCMP_ACT_BOGUS"}, "unknown action"),
        (
            {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "x"}]},
            "both 'architectures' and 'archMap'",
        ),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]},
         "both 'name' and 'names'"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW",
                                                            "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
         "index"),
        ({"syscalls": []}, "defaultAction: required field is missing"),
    ],
)  # fmt: skip
def test_bad_profiles_are_refused(profile: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        to_oci(profile, DEFAULT_CAPABILITIES, **X86)


def test_security_opt_value_json_or_path(tmp_path: Path) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW"}
    assert parse_security_opt_profile(json.dumps(profile)) == profile  # what the docker CLI sends
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    assert parse_security_opt_profile(str(path)) == profile
    with pytest.raises(InvalidArgument, match=r"^opening seccomp profile \(/nonexistent\) failed: No such file"):
        parse_security_opt_profile("/nonexistent")
    with pytest.raises(InvalidArgument, match=r"^decoding seccomp profile failed"):
        parse_security_opt_profile("{not json")
    with pytest.raises(InvalidArgument, match="expected a JSON object"):
        path.write_text("[1]")
        parse_security_opt_profile(str(path))


def test_default_profile_is_a_fresh_copy() -> None:
    first = default_profile()
    first["syscalls"].clear()
    assert default_profile()["syscalls"]
