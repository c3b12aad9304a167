"""Record the oracle: run every case under the real ansible-playbook, write expected/.

    bash tests/ansible/make-venv.sh && .venv-ansible/bin/python tests/ansible/record.py [NAME...]

Each case runs with ``-c local -i localhost,`` in a scratch copy of its directory; the
exit class, observation file and recap go to ``expected/NAME.json`` (committed, so the
pytest suite needs no ansible).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import EXPECTED, Case, Outcome, ansible_exit, ansible_recap, cases, read_observation

VENV = Path(__file__).resolve().parents[2] / ".venv-ansible"


def record(case: Case) -> tuple[str, Outcome, str]:
    with tempfile.TemporaryDirectory(prefix=f"ansible-{case.name}-") as tmp:
        playbook, obs = case.stage(Path(tmp))
        env = {
            **os.environ,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_PYTHON_INTERPRETER": str(VENV / "bin" / "python"),
            "ANSIBLE_HOME": str(Path(tmp) / ".ansible"),
            "ANSIBLE_LOCAL_TEMP": str(Path(tmp) / ".ansible-tmp"),
        }
        argv = [str(VENV / "bin" / "ansible-playbook"), "-c", "local", "-i", "localhost,", str(playbook), "-e", f"obs={obs}", *case.args]
        proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
        out = Outcome(ansible_exit(proc.returncode), read_observation(obs), ansible_recap(proc.stdout))
        return case.name, out, proc.stdout + proc.stderr


def main(names: list[str]) -> int:
    selected = [c for c in cases() if not names or c.name in names]
    EXPECTED.mkdir(exist_ok=True)
    version = subprocess.run([str(VENV / "bin" / "ansible-playbook"), "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        for name, out, log in pool.map(record, selected):
            data = {"ansible": version, **out.to_dict()}
            (EXPECTED / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
            print(f"{name:40} {out.exit:8} {out.recap}")
            if out.exit.startswith("other") or (out.exit == "error" and "-v" in names):
                print(log)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
