#!/usr/bin/python3
"""Runs a command under the parts of a systemd unit's sandbox that a process
can impose on itself, the way systemd applies them: NoNewPrivileges,
MemoryDenyWriteExecute (prctl PR_SET_MDWE), RestrictAddressFamilies and
SystemCallFilter with SystemCallErrorNumber (seccomp, with systemd's own
system call groups from `systemd-analyze syscall-filter`). The unit's mount,
user and namespace options need systemd itself and are not applied.

    sandboxed.py UNIT COMMAND...

Debian's python3 with python3-seccomp (scripts/setup.sh installs both).
"""
import ctypes
import errno
import os
import socket
import subprocess
import sys

import seccomp

PR_SET_NO_NEW_PRIVS = 38
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def unit_settings(path):
    """The [Service] settings of a unit, each key with its values in order."""
    settings, section, line = {}, None, ""
    for raw in open(path, encoding="utf-8"):
        line += raw.rstrip("\n")
        if line.endswith("\\"):
            line = line[:-1] + " "
            continue
        text, line = line.strip(), ""
        if text.startswith("["):
            section = text
        elif section == "[Service]" and "=" in text and not text.startswith(("#", ";")):
            key, value = text.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_groups():
    """systemd's system call groups: name -> members (calls and @groups)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    groups, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.strip())
    return groups


def expand(names, groups):
    calls = set()
    for name in names:
        calls |= expand(groups[name], groups) if name.startswith("@") else {name}
    return calls


def allowed_calls(filters, groups):
    """systemd's SystemCallFilter= semantics: the first line decides allow or
    deny list; later "~" lines remove from an allow list."""
    allowed = set()
    for value in filters:
        names = value.split()
        if value.startswith("~"):
            allowed -= expand([names[0][1:]] + names[1:], groups)
        else:
            allowed |= expand(names, groups)
    return allowed


def main():
    unit, command = sys.argv[1], sys.argv[2:]
    settings = unit_settings(unit)
    libc = ctypes.CDLL(None, use_errno=True)

    def prctl(option, value):
        if libc.prctl(option, value, 0, 0, 0) != 0:
            sys.exit(f"sandboxed.py: prctl({option}, {value}): {os.strerror(ctypes.get_errno())}")

    def enabled(key):
        return settings.get(key, ["no"])[-1] == "yes"

    if enabled("NoNewPrivileges"):
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    if enabled("MemoryDenyWriteExecute"):
        prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)

    filters = settings.get("SystemCallFilter", [])
    if filters:
        if filters[0].startswith("~"):
            sys.exit("sandboxed.py: only units whose SystemCallFilter= is an allow list are supported")
        refused = seccomp.ERRNO(getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1]))
        families = [getattr(socket, name) for value in settings.get("RestrictAddressFamilies", []) for name in value.split()]
        rules = seccomp.SyscallFilter(defaction=refused)
        for call in sorted(allowed_calls(filters, syscall_groups())):
            # socket() only for the unit's address families (systemd answers
            # the others with EAFNOSUPPORT, this filter with the refusal errno).
            conditions = [[seccomp.Arg(0, seccomp.EQ, family)] for family in families] if call == "socket" and families else [[]]
            for condition in conditions:
                try:
                    rules.add_rule(seccomp.ALLOW, call, *condition)
                except (RuntimeError, ValueError):
                    pass  # a call this architecture does not have
        rules.load()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
