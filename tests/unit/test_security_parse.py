"""Parsing of process.capabilities and linux.seccomp: what is accepted, and the error for each bad input."""

import copy
import errno
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hull.errors import InvalidArgument
from hull.runtime import capabilities
from hull.runtime.capabilities import CAPABILITIES, LinuxCapabilities, cap_mask
from hull.runtime.seccomp import ACTIONS, LinuxSeccomp, SeccompArg, action_value

pytestmark = pytest.mark.unit


# --- capabilities ---------------------------------------------------------------------------


def test_capability_table_matches_the_kernel_numbers() -> None:
    assert len(CAPABILITIES) == 41
    assert CAPABILITIES[0] == "CAP_CHOWN"
    assert CAPABILITIES[13] == "CAP_NET_RAW"
    assert CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"
    assert cap_mask(["CAP_CHOWN", "CAP_KILL"]) == 0b100001


def test_last_cap_is_what_the_kernel_reports() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert capabilities.last_cap() == int(f.read())


def test_capabilities_parse() -> None:
    caps = LinuxCapabilities.from_json(
        {"bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "ambient": []}
    )
    assert caps == LinuxCapabilities(bounding=["CAP_CHOWN", "CAP_KILL"], effective=["CAP_KILL"])


def test_unknown_capability_is_named() -> None:
    with pytest.raises(InvalidArgument) as e:
        LinuxCapabilities.from_json({"permitted": ["CAP_KILL", "CAP_FOO"]})
    assert e.value.message == 'process.capabilities.permitted[1]: unknown capability "CAP_FOO"'


@pytest.mark.parametrize(
    "obj, where",
    [
        ({"bounding": "CAP_KILL"}, "process.capabilities.bounding"),
        ({"effective": [5]}, "process.capabilities.effective[0]"),
        ({"ambient": [None]}, "process.capabilities.ambient[0]"),
    ],
)
def test_capabilities_bad_types(obj: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        LinuxCapabilities.from_json(obj)
    assert e.value.message.startswith(f"{where}: expected"), e.value.message


def test_capabilities_not_an_object() -> None:
    with pytest.raises(InvalidArgument, match=r"^process.capabilities: expected an object"):
        LinuxCapabilities.from_json(["CAP_KILL"])  # type: ignore[arg-type]


def test_capability_above_the_kernels_last_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "last_cap", lambda: 37)  # a kernel before CAP_PERFMON
    caps = LinuxCapabilities.from_json({"bounding": ["CAP_PERFMON", "CAP_AUDIT_READ", "CAP_BPF"]}, where="--cap")
    assert caps.bounding == ["CAP_AUDIT_READ"]


# --- seccomp ----------------------------------------------------------------------------------

PROFILE: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}],
        },
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        },
        {"names": ["getsid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["ptrace"], "action": "SCMP_ACT_TRACE"},
    ],
}


def _with(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """PROFILE with the field at `path` set to `value` (deleted if value is DELETE)."""
    obj = copy.deepcopy(PROFILE)
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


DELETE = object()


def test_seccomp_parse() -> None:
    cfg = LinuxSeccomp.from_json(PROFILE)
    assert cfg.default_action == "SCMP_ACT_ERRNO" and cfg.default_errno_ret == 1
    assert cfg.architectures == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert cfg.flags == ["SECCOMP_FILTER_FLAG_LOG"]
    assert [s.names for s in cfg.syscalls] == [["read", "write"], ["personality"], ["clone"], ["getsid"], ["ptrace"]]
    assert cfg.syscalls[1].args == [SeccompArg(0, 0xFFFFFFFF, "SCMP_CMP_EQ", 0)]
    assert cfg.syscalls[2].args == [SeccompArg(0, 0x7E020000, "SCMP_CMP_MASKED_EQ", 0)]
    assert cfg.syscalls[3].errno_ret == 38
    assert cfg.syscalls[4].errno_ret is None
    assert cfg.listener_path == "" and cfg.listener_metadata == ""


def test_seccomp_minimal_and_every_spec_value() -> None:
    assert LinuxSeccomp.from_json({"defaultAction": "SCMP_ACT_ALLOW"}) == LinuxSeccomp("SCMP_ACT_ALLOW")
    for action in ACTIONS:
        LinuxSeccomp.from_json(
            {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/l", "syscalls": [{"names": ["x"], "action": action}]}
        )
    for op in ("NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"):
        LinuxSeccomp.from_json(_with(("syscalls", 1, "args", 0, "op"), f"SCMP_CMP_{op}"))
    archs = ["X86", "X86_64", "X32", "ARM", "AARCH64", "MIPS", "MIPS64", "MIPS64N32", "MIPSEL", "MIPSEL64",
             "MIPSEL64N32", "PPC", "PPC64", "PPC64LE", "S390", "S390X", "PARISC", "PARISC64", "RISCV64"]  # fmt: skip
    LinuxSeccomp.from_json(_with(("architectures",), [f"SCMP_ARCH_{a}" for a in archs]))
    flags = ["TSYNC", "LOG", "SPEC_ALLOW", "WAIT_KILLABLE_RECV"]
    LinuxSeccomp.from_json(_with(("flags",), [f"SECCOMP_FILTER_FLAG_{f}" for f in flags]))
    notify = LinuxSeccomp.from_json(
        {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock", "listenerMetadata": "m",
         "syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"}]}
    )  # fmt: skip
    assert notify.listener_path == "/run/agent.sock" and notify.listener_metadata == "m"


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/l"}, "SCMP_ACT_NOTIFY cannot be the default action"),
        ({"syscalls": [{"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"}]},
         "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"),
        ({"listenerPath": "/l", "syscalls": [{"names": ["mkdir", "sendmsg"], "action": "SCMP_ACT_NOTIFY"}]},
         "cannot apply to sendmsg: the runtime needs it"),
    ],
)  # fmt: skip
def test_notify_needs_a_listener_and_spares_the_runtimes_calls(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        LinuxSeccomp.from_json({"defaultAction": "SCMP_ACT_ALLOW", **obj})


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("defaultAction",), DELETE, "linux.seccomp.defaultAction: required field is missing"),
        (("defaultAction",), "SCMP_ACT_NOPE", "linux.seccomp.defaultAction: unknown action 'SCMP_ACT_NOPE'"),
        (("defaultAction",), 0, "linux.seccomp.defaultAction: expected a string, got 0"),
        (("defaultErrnoRet",), "1", "linux.seccomp.defaultErrnoRet: expected an integer, got '1'"),
        (("defaultErrnoRet",), -1, "linux.seccomp.defaultErrnoRet: must be 0 to 65535, got -1"),
        (("defaultErrnoRet",), 65536, "linux.seccomp.defaultErrnoRet: must be 0 to 65535, got 65536"),
        (("architectures",), "SCMP_ARCH_X86_64", "linux.seccomp.architectures: expected a list"),
        (("architectures", 1), "SCMP_ARCH_VAX", "linux.seccomp.architectures[1]: unknown architecture 'SCMP_ARCH_VAX'"),
        (("architectures", 2), "x32", "linux.seccomp.architectures[2]: unknown architecture 'x32'"),
        (("flags", 0), "SECCOMP_FILTER_FLAG_NEW_LISTENER",
         "linux.seccomp.flags[0]: unknown flag 'SECCOMP_FILTER_FLAG_NEW_LISTENER'"),
        (("flags", 0), 1, "linux.seccomp.flags[0]: expected a string, got 1"),
        (("listenerPath",), 5, "linux.seccomp.listenerPath: expected a string, got 5"),
        (("listenerMetadata",), "m", "linux.seccomp.listenerMetadata: must not be set without listenerPath"),
        (("syscalls",), {}, "linux.seccomp.syscalls: expected a list, got {}"),
        (("syscalls", 0), ["read"], "linux.seccomp.syscalls[0]: expected an object"),
        (("syscalls", 0, "names"), DELETE, "linux.seccomp.syscalls[0].names: must name at least one system call"),
        (("syscalls", 0, "names"), [], "linux.seccomp.syscalls[0].names: must name at least one system call"),
        (("syscalls", 0, "names"), "read", "linux.seccomp.syscalls[0].names: expected a list"),
        (("syscalls", 0, "names", 1), 1, "linux.seccomp.syscalls[0].names[1]: expected a string, got 1"),
        (("syscalls", 0, "action"), DELETE, "linux.seccomp.syscalls[0].action: required field is missing"),
        (("syscalls", 0, "action"), "SCMP_ACT_DENY",
         "linux.seccomp.syscalls[0].action: unknown action 'SCMP_ACT_DENY'"),
        (("syscalls", 0, "errnoRet"), 1,
         "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_ALLOW takes no errno "
         "(only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)"),
        (("syscalls", 3, "errnoRet"), True, "linux.seccomp.syscalls[3].errnoRet: expected an integer, got True"),
        (("syscalls", 1, "args"), {"index": 0}, "linux.seccomp.syscalls[1].args: expected a list"),
        (("syscalls", 1, "args", 0, "op"), "SCMP_CMP_IN",
         "linux.seccomp.syscalls[1].args[0].op: unknown operator 'SCMP_CMP_IN'"),
        (("syscalls", 1, "args", 0, "op"), DELETE, "linux.seccomp.syscalls[1].args[0].op: required field is missing"),
        (("syscalls", 1, "args", 0, "index"), 6, "linux.seccomp.syscalls[1].args[0].index: must be 0 to 5, got 6"),
        (("syscalls", 1, "args", 0, "index"), -1, "linux.seccomp.syscalls[1].args[0].index: must be 0 to 5, got -1"),
        (("syscalls", 1, "args", 0, "index"), False, "linux.seccomp.syscalls[1].args[0].index: expected an integer"),
        (("syscalls", 1, "args", 0, "value"), DELETE,
         "linux.seccomp.syscalls[1].args[0].value: required field is missing"),
        (("syscalls", 1, "args", 0, "value"), "0xffffffff",
         "linux.seccomp.syscalls[1].args[0].value: expected an integer"),
        (("syscalls", 1, "args", 0, "value"), -1,
         "linux.seccomp.syscalls[1].args[0].value: must be an unsigned 64-bit integer, got -1"),
        (("syscalls", 2, "args", 0, "valueTwo"), 2**64,
         f"linux.seccomp.syscalls[2].args[0].valueTwo: must be an unsigned 64-bit integer, got {2**64}"),
    ],
)  # fmt: skip
def test_seccomp_bad_input(path: tuple[str | int, ...], value: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        LinuxSeccomp.from_json(_with(path, value))
    assert e.value.message.startswith(message), e.value.message


def test_seccomp_default_errno_needs_an_errno_action() -> None:
    with pytest.raises(InvalidArgument, match=r"^linux.seccomp.defaultErrnoRet: SCMP_ACT_KILL takes no errno"):
        LinuxSeccomp.from_json({"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 1})


def test_seccomp_not_an_object() -> None:
    with pytest.raises(InvalidArgument, match=r"^linux.seccomp: expected an object"):
        LinuxSeccomp.from_json("SCMP_ACT_ALLOW")  # type: ignore[arg-type]


def test_action_values() -> None:
    assert action_value("SCMP_ACT_ALLOW", None) == 0x7FFF0000
    assert action_value("SCMP_ACT_KILL", None) == action_value("SCMP_ACT_KILL_THREAD", None) == 0
    assert action_value("SCMP_ACT_KILL_PROCESS", None) == 0x80000000
    assert action_value("SCMP_ACT_ERRNO", None) == 0x00050000 | errno.EPERM
    assert action_value("SCMP_ACT_ERRNO", 0) == 0x00050000
    assert action_value("SCMP_ACT_ERRNO", errno.ENOSYS) == 0x00050000 | errno.ENOSYS
    assert action_value("SCMP_ACT_TRACE", None) == 0x7FF00000 | errno.EPERM


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.text(max_size=8)
    | st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_CMP_EQ", "SCMP_ARCH_X86_64", "getpid"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["names", "action", "errnoRet", "args", "index", "value", "valueTwo", "op", "x"]),
        inner,
        max_size=5,
    ),
    max_leaves=20,
)  # fmt: skip


@given(
    st.fixed_dictionaries(
        {"defaultAction": st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "bad"])},
        optional={"syscalls": _json, "architectures": _json, "flags": _json, "defaultErrnoRet": _json},
    )
)
def test_seccomp_any_input_parses_or_is_refused_by_name(obj: dict[str, Any]) -> None:
    try:
        LinuxSeccomp.from_json(obj)
    except InvalidArgument as e:
        assert e.message.startswith("linux.seccomp.")
