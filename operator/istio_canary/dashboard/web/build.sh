#!/usr/bin/env bash
# The dashboard's JavaScript libraries: installed from npm exactly as package-lock.json pins
# them, and copied into ../static/vendor, from where the server serves them (no CDN at run time).
set -euo pipefail
cd "$(dirname "$0")"
vendor=../static/vendor
stamp=$vendor/.lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
mkdir -p "$vendor"
cp node_modules/chart.js/dist/chart.umd.min.js "$vendor/"
cp node_modules/cytoscape/dist/cytoscape.min.js "$vendor/"
cp node_modules/chart.js/LICENSE.md "$vendor/chart.js.LICENSE.md"
cp node_modules/cytoscape/LICENSE "$vendor/cytoscape.LICENSE"
echo "$want" > "$stamp"
echo "dashboard: JavaScript libraries copied to static/vendor"
