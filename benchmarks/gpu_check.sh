#!/usr/bin/env bash
# The prepared GPU run of issue #15: installs what is missing, then runs benchmarks/gpu_check.py (the
# steps, their time limits and the targets are described there). Within 9 minutes on a GPU machine.
#
#   bash benchmarks/gpu_check.sh              # on a machine with a GPU; results in $OUT (else a temp dir)
#   bash benchmarks/gpu_check.sh --dry-run    # the whole run on the CPU at tiny sizes
#   bash benchmarks/gpu_check.sh --out DIR    # (any option of gpu_check.py)
#
# A GPU machine without a package index: array-api-compat (and any other missing package) is installed
# from the wheels in .whl/, made beforehand on a machine with an index:
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl array-api-compat
# and ssdops itself is installed editable from this checkout, with no dependencies and no network.
# PYTHON selects the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

if ! "$python" -c "import array_api_compat" 2>/dev/null; then
    if ! compgen -G ".whl/*.whl" >/dev/null; then
        echo "gpu_check: array-api-compat is not installed and .whl/ holds no wheel of it; on a machine" \
             "with a package index run: python3 -m pip download --no-deps --only-binary=:all: -d .whl" \
             "array-api-compat" >&2
        exit 2
    fi
    site=$(mktemp -d -t ssdops_gpu_check_site.XXXXXX)
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu_check: installed $(cd .whl && ls -- *.whl | tr '\n' ' ')into $site"
fi
if ! "$python" -c "import ssdops.backends, diffnet_torch.cli" 2>/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-build-isolation -e .
    echo "gpu_check: installed ssdops (editable) from $(pwd)"
fi
exec "$python" benchmarks/gpu_check.py "$@"
