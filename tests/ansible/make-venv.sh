#!/usr/bin/env bash
# The oracle: real ansible-core in its own venv (.venv-ansible), used only by record.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION="${ANSIBLE_CORE_VERSION:-2.19.*}"
if [ ! -x .venv-ansible/bin/ansible-playbook ]; then
    python3.11 -m venv .venv-ansible
    .venv-ansible/bin/pip install -q "ansible-core==${VERSION}"
fi
.venv-ansible/bin/ansible-playbook --version | head -1
