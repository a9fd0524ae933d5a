"""Render an HTML file in headless Chromium and report JS errors, console errors and images that did not load.

Used by the report tests (``@pytest.mark.chromium``); they skip with :data:`NO_CHROMIUM` when no
Chromium binary is on PATH.
"""

import html as _html
import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
NO_CHROMIUM = "headless Chromium not installed (apt-get install chromium); .ci/run installs it"

#: Injected before the page's own content: records JS errors, console.error calls and failed
#: resources, then (on load) every image that did not decode, into a <pre> that --dump-dom prints.
_PROBE = """<script>
window.__errs=[];
window.addEventListener('error',function(e){var t=e.target;if(t&&t!==window&&t.tagName){__errs.push('resource failed: '+t.tagName+' '+(t.src||t.href));}else{__errs.push('js error: '+e.message);}},true);
(function(){var ce=console.error;console.error=function(){__errs.push('console.error: '+Array.prototype.join.call(arguments,' '));ce.apply(console,arguments);};})();
window.addEventListener('load',function(){var im=document.images,bad=[];for(var i=0;i<im.length;i++){if(!im[i].complete||im[i].naturalWidth===0)bad.push(im[i].alt||String(i));}
var remote=document.querySelectorAll('[src^="http"],[href^="http"],link[rel=stylesheet]').length;
var p=document.createElement('pre');p.id='__tokembed_check';p.textContent=JSON.stringify({images:im.length,broken:bad,errors:__errs,remote:remote,text:document.body.innerText.length});document.body.appendChild(p);});
</script>"""


def chromium_check(html_path: Path, tmp_path: Path) -> dict:
    """Render ``html_path`` in headless Chromium; return the probe's findings plus console lines from stderr."""
    page = html_path.read_text(encoding="utf-8")
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(page.replace("<head>", "<head>" + _PROBE, 1), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--dump-dom", probe_page.as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="__tokembed_check">(.*?)</pre>', p.stdout, re.S)
    assert m, f"page did not finish loading in Chromium (rc {p.returncode}): {p.stderr[-2000:]}"
    found = json.loads(_html.unescape(m.group(1)))
    found["console"] = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln]
    return found
