"""``radcase-pacs user add|passwd|disable|enable|list``: user management from the shell, for
the first steps of a deployment and for when no admin can log in.

Passwords are read from the terminal (twice), or from standard input with
``--password-stdin`` (scripts); they never appear on a command line, where other users of the
machine could read them.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from radcase_pacs.auth.layer import AuthLayer
from radcase_pacs.auth.passwords import WeakPassword
from radcase_pacs.auth.principal import Role
from radcase_pacs.auth.users import Taken
from radcase_pacs.settings import Settings

USER_ROLES = [Role.ADMIN.value, Role.EDUCATOR.value, Role.LEARNER.value]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = commands.add_parser("user", help="manage users (add, passwd, disable, enable, list)")
    actions = user.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", choices=USER_ROLES, default=Role.LEARNER.value)
    add.add_argument("--tenant", help="institution (default: the server's own)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = actions.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    for name, text in (("disable", "refuse a user's logins"), ("enable", "allow them again")):
        actions.add_parser(name, help=text).add_argument("username")
    listing = actions.add_parser("list", help="list the users of an institution")
    listing.add_argument("--tenant", help="institution (default: the server's own)")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise WeakPassword("the two passwords differ")
    return first


def run(settings: Settings, args: argparse.Namespace) -> int:
    from radcase_pacs.deployment import auth_layer

    layer = auth_layer(settings)
    layer.users.open()
    try:
        return _run(layer, settings, args)
    except (WeakPassword, Taken) as exc:
        print(f"radcase-pacs: {exc}", file=sys.stderr)
        return 1
    finally:
        layer.close()


def _run(layer: AuthLayer, settings: Settings, args: argparse.Namespace) -> int:
    users = layer.users
    if args.action == "list":
        for user in users.users(args.tenant or settings.tenant):
            state = "disabled" if user.disabled else "enabled"
            print(f"{user.username}\t{user.role.value}\t{user.tenant}\t{state}")
        return 0
    if args.action == "add":
        password = _password(args.password_stdin)
        user = users.add_user(
            args.username, args.tenant or settings.tenant, Role(args.role), password
        )
        print(f"created {user.role.value} {user.username} in {user.tenant}")
        return 0
    if users.user(args.username) is None:
        print(f"radcase-pacs: no user {args.username}", file=sys.stderr)
        return 1
    if args.action == "passwd":
        users.set_password(args.username, _password(args.password_stdin))
    else:
        users.set_disabled(args.username, args.action == "disable")
    ended = layer.sessions.revoke_user(args.username)
    print(f"{args.action}: {args.username} ({ended} session(s) ended)")
    return 0
