"""Issue 13: `tfa-server service` and `tfa-server pam`, run for real as subprocesses."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import httpx

from .test_cli import FAST, Launch, add_user, assert_error, db, env, launch, run, serve

__all__ = ["db", "env", "launch"]  # fixtures used by name
KEY = re.compile(r"tfasvc_[A-Za-z0-9_-]{43}")


def add_service(env: dict[str, str], db: Path, name: str, *extra: str) -> str:
    result = run(env, "service", "add", name, *extra, "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert KEY.fullmatch(result.stdout.strip()), "the key alone on standard output"
    assert result.stdout.count("\n") == 1
    assert "shown only now" in result.stderr
    return result.stdout.strip()


class TestServiceCommands:
    def test_add_list_revoke(self, db: Path, env: dict[str, str]) -> None:
        key = add_service(env, db, "SSHD-Bastion", "--description", "jump host")
        listed = run(env, "service", "list", "--json", "--db", str(db))
        items = json.loads(listed.stdout)
        assert [(item["name"], item["description"]) for item in items] == [
            ("sshd-bastion", "jump host")
        ]
        assert items[0]["created_by"].startswith("cli:")
        assert items[0]["last_used_at"] is None
        assert key not in listed.stdout
        table = run(env, "service", "list", "--db", str(db)).stdout
        assert "sshd-bastion" in table
        assert "never" in table
        assert key not in table
        revoked = run(env, "service", "revoke", "sshd-bastion", "--db", str(db))
        assert revoked.returncode == 0
        assert "revoked" in revoked.stdout
        assert json.loads(run(env, "service", "list", "--json", "--db", str(db)).stdout) == []

    def test_refusals_are_one_line(self, db: Path, env: dict[str, str]) -> None:
        add_service(env, db, "sudo")
        assert_error(run(env, "service", "add", "sudo", "--db", str(db)), 1, "already")
        assert_error(run(env, "service", "add", "a/b", "--db", str(db)), 1, "Service names")
        assert_error(run(env, "service", "revoke", "nope", "--db", str(db)), 1, "no service")

    async def test_the_printed_key_opens_the_verify_api_until_revoked(
        self, db: Path, env: dict[str, str], launch: Launch
    ) -> None:
        add_user(env, db, "alice")
        key = add_service(env, db, "sshd")
        running = await serve(
            launch, env, "--db", str(db), "--port", "0", "--public-url", "https://tfa.test", *FAST
        )
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=running.url) as http:
            answer = await http.post(
                "/api/v1/verify/start", headers=auth, json={"username": "alice"}
            )
            assert answer.json()["next"] == "allow"
            assert "tfa --server https://tfa.test" in answer.json()["message"]
            run(env, "service", "revoke", "sshd", "--db", str(db))
            refused = await http.post(
                "/api/v1/verify/start", headers=auth, json={"username": "alice"}
            )
            assert refused.status_code == 401


class TestPamCommands:
    def test_path_names_the_module_file(self, env: dict[str, str]) -> None:
        result = run(env, "pam", "path")
        assert result.returncode == 0
        path = Path(result.stdout.strip())
        assert path.is_absolute()
        assert path.is_file()
        functions = {
            node.name
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef)
        }
        assert {"pam_sm_authenticate", "pam_sm_setcred"} <= functions

    def test_example_is_ready_to_paste(self, env: dict[str, str]) -> None:
        module = run(env, "pam", "path").stdout.strip()
        result = run(env, "pam", "example", "--url", "https://tfa.example:8443")
        assert result.returncode == 0
        lines = result.stdout.splitlines()
        assert (
            f"auth required pam_python.so {module} url=https://tfa.example:8443"
            " key_file=/etc/tfa/service.key"
        ) in lines
        for line in (
            "UsePAM yes",
            "KbdInteractiveAuthentication yes",
            "AuthenticationMethods publickey,keyboard-interactive",
        ):
            assert line in lines
        assert_error(run(env, "pam", "example"), 2, "--url")
