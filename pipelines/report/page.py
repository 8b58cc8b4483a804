"""The HTML page: one file, inline CSS and JS, a Content-Security-Policy that allows only
inline code and ``data:`` media, so the page works offline and cannot reach the network."""
from __future__ import annotations

from dataclasses import dataclass

from .media import esc

CSP = ("default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#20303f;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:1.4em} header p{margin:4px 0 0;opacity:.8}
nav{background:#fff;border-bottom:1px solid #ddd;padding:6px 28px;z-index:5}
nav a{margin-right:16px;color:#20507f;text-decoration:none;font-size:.95em}
main{padding:8px 28px 40px;max-width:1280px}
section{margin:22px 0;padding:12px 18px;background:#fff;border:1px solid #e3e3e3;border-radius:6px}
h2{margin:4px 0 10px;font-size:1.2em} h3{font-size:1em;margin:16px 0 6px}
table{border-collapse:collapse;font-size:.85em}
th,td{border:1px solid #e0e0e0;padding:3px 7px;text-align:left;vertical-align:top}
table.metrics td{text-align:right;font-variant-numeric:tabular-nums}
table.facts th{background:#f4f6f8;font-weight:600}
tr.metric-group th{background:#e6edf4} td.metric-note{color:#444;font-style:italic;background:#e6edf4}
.scroll{overflow:auto;max-height:620px}
.note{color:#666;font-size:.85em} .warn{color:#a33}
.gallery{display:flex;flex-wrap:wrap;gap:14px} .gallery figure{margin:0}
img.plot{max-width:100%;max-height:560px;border:1px solid #eee}
figcaption,.caption{font-size:.75em;color:#555;text-align:center}
img.thumb{width:56px;height:56px;image-rendering:pixelated;margin:1px;border:1px solid #eee}
img.spec{width:190px;height:72px;display:block;border-radius:3px 3px 0 0}
.clip{display:inline-block;margin:2px} audio{height:32px;width:190px;display:block}
.gen-text{font-family:ui-monospace,monospace;background:#f1f4f7;padding:1px 5px;border-radius:3px}
.scatter-wrap{position:relative;display:flex;gap:16px;align-items:flex-start}
svg.scatter{background:#fff;max-width:100%} svg .frame{fill:none;stroke:#ddd}
svg .pt{stroke:#fff;stroke-width:.6;cursor:pointer;opacity:.85} svg .pt:hover,svg .pt.hot{stroke:#000;stroke-width:1.5;opacity:1}
.legend-box{font-size:.85em} .legend{list-style:none;padding:0;margin:6px 0 0} .legend-title{font-weight:600}
.swatch{display:inline-block;width:11px;height:11px;border-radius:50%;margin-right:6px;vertical-align:middle}
.tip{position:absolute;background:#fff;border:1px solid #999;border-radius:4px;padding:6px;
 box-shadow:0 2px 8px rgba(0,0,0,.25);pointer-events:none;font-size:.8em;z-index:4;max-width:220px}
.tip-img{width:96px;height:96px;image-rendering:pixelated;display:block}
.interp{border-top:1px solid #eee;padding-top:6px}
.stage{display:flex;align-items:center;gap:14px;min-height:40px}
.stage-image{height:160px;image-rendering:pixelated;border:1px solid #ddd}
.stage-spec{height:160px;width:320px;border-radius:3px}
.stage-text{font-family:ui-monospace,monospace;font-size:1.3em}
.slider{display:flex;align-items:center;gap:10px;margin:8px 0} .slider input{width:340px}
.steps{display:flex;flex-wrap:wrap;gap:6px}
.step{margin:0;padding:4px;border:2px solid transparent;border-radius:4px;cursor:pointer}
.step.current{border-color:#20507f;background:#eef4fa}
.step .step-image{height:72px;image-rendering:pixelated;display:block}
.step .step-spec{width:150px;height:56px;display:block}
.step audio{width:150px} .step-text{font-family:ui-monospace,monospace;display:block}
img.strip{max-width:100%;image-rendering:pixelated}
pre{background:#f6f8fa;padding:10px;overflow:auto;max-height:480px;font-size:.8em}
"""

SCRIPT = """
(function(){
  function each(sel, fn){ Array.prototype.forEach.call(document.querySelectorAll(sel), fn); }
  each('.interp', function(box){
    var slider = box.querySelector('.step-slider');
    if(!slider) return;
    var cards = box.querySelectorAll('.step');
    var stageImg = box.querySelector('.stage-image'), stageAudio = box.querySelector('.stage-audio');
    var stageSpec = box.querySelector('.stage-spec');
    var stageText = box.querySelector('.stage-text'), label = box.querySelector('.step-label');
    function show(k){
      var card = cards[k]; if(!card) return;
      var img = card.querySelector('.step-image'), audio = card.querySelector('.step-audio');
      var text = card.querySelector('.step-text'), spec = card.querySelector('.step-spec');
      if(stageImg && img) stageImg.src = img.src;
      if(stageSpec && spec) stageSpec.src = spec.src;
      if(stageAudio && audio){ var playing = !stageAudio.paused; stageAudio.src = audio.src;
        if(playing){ var p = stageAudio.play(); if(p && p.catch) p.catch(function(){}); } }
      if(stageText && text) stageText.textContent = text.textContent;
      label.textContent = (k + 1) + ' / ' + cards.length + ' (' + card.getAttribute('data-alpha') + ')';
      Array.prototype.forEach.call(cards, function(c, i){ c.classList.toggle('current', i === k); });
      box.setAttribute('data-current', String(k));
    }
    slider.addEventListener('input', function(){ show(parseInt(slider.value, 10)); });
    Array.prototype.forEach.call(cards, function(card, i){
      card.addEventListener('click', function(ev){ if(ev.target.tagName === 'AUDIO') return;
        slider.value = String(i); show(i); });
    });
    show(0);
  });
  each('.scatter-wrap', function(wrap){
    var data = JSON.parse(wrap.querySelector('.scatter-data').textContent);
    var tip = wrap.querySelector('.tip'), tipImg = tip.querySelector('.tip-img');
    var tipLabel = tip.querySelector('.tip-label'), svg = wrap.querySelector('svg');
    var points = svg.querySelectorAll('.pt'), menu = wrap.querySelector('.colour-by');
    var columns = Object.keys(data.columns);
    if(menu) menu.addEventListener('change', function(){
      var c = data.colourings[menu.value], legend = wrap.querySelector('.legend');
      Array.prototype.forEach.call(points, function(p, i){ p.setAttribute('fill', c.colours[i]); });
      legend.textContent = '';
      c.legend.forEach(function(item){
        var li = document.createElement('li'), sw = document.createElement('span');
        sw.className = 'swatch'; sw.style.background = item[1];
        li.appendChild(sw); li.appendChild(document.createTextNode(item[0] || '(none)'));
        legend.appendChild(li);
      });
    });
    svg.addEventListener('mouseover', function(ev){
      var t = ev.target; if(!t.classList || !t.classList.contains('pt')) return;
      var i = parseInt(t.getAttribute('data-i'), 10);
      var parts = columns.map(function(c){ return c + ' ' + data.columns[c][i]; });
      parts.push('row ' + data.rows[i]);
      if(data.texts[i]) parts.push('\u201c' + data.texts[i] + '\u201d');
      tipLabel.textContent = parts.join(' \u00b7 ');
      if(tipImg){ if(data.thumbs[i]){ tipImg.src = data.thumbs[i]; tipImg.style.display = ''; }
                  else { tipImg.style.display = 'none'; } }
      var box = wrap.getBoundingClientRect(), p = t.getBoundingClientRect();
      tip.style.left = (p.left - box.left + 12) + 'px'; tip.style.top = (p.top - box.top + 12) + 'px';
      tip.hidden = false; t.classList.add('hot');
    });
    svg.addEventListener('mouseout', function(ev){
      if(ev.target.classList && ev.target.classList.contains('pt')){ tip.hidden = true; ev.target.classList.remove('hot'); }
    });
  });
})();
"""


@dataclass
class Section:
    """One titled part of the page; ``body`` is trusted HTML built by the report modules."""

    key: str
    title: str
    body: str


def render_page(title: str, subtitle: str, sections: list[Section]) -> str:
    nav = "".join(f'<a href="#{s.key}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.key}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{esc(title)}</title><style>{STYLE}</style></head>
<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>
<nav>{nav}</nav><main>{body}</main>
<script>{SCRIPT}</script></body></html>
"""
