// The report's script: sortable, filterable results tables and SVG plots, built from the JSON
// in #report-data with DOM calls only (textContent, never innerHTML for data), and, when the
// page is served live, a poll that swaps in the server's freshly rendered (escaped) sections.
// Names and values from the grid (stages, parameters, metrics) key only Maps and Sets, never
// plain objects: "__proto__" or "constructor" is then a name like any other.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var MAX_ROWS = 500;
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"];
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var ui = new Map();  // per stage: sort column, direction, filter text, group-by parameter

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function svgEl(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs || {}) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function cellText(v) {
    if (v === null || v === undefined) { return ""; }
    if (typeof v === "object") { return JSON.stringify(v); }
    return String(v);
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function cmp(a, b) {  // numbers, then text; missing values are handled by the caller
    if (isNum(a) && isNum(b)) { return a - b; }
    if (isNum(a)) { return -1; }
    if (isNum(b)) { return 1; }
    var x = cellText(a), y = cellText(b);
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  function fmt(v) {
    if (!isNum(v)) { return cellText(v); }
    if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3)) { return v.toExponential(2); }
    return String(Math.round(v * 1e4) / 1e4);
  }

  // -- results tables -------------------------------------------------------------------
  function matchesFilter(t, row, words) {
    for (var i = 0; i < words.length; i++) {
      var w = words[i], eq = w.indexOf("=");
      if (eq > 0) {
        var col = t.columns.indexOf(w.slice(0, eq));
        if (col < 0 || cellText(row[col]).toLowerCase() !== w.slice(eq + 1)) { return false; }
      } else if (row.__text.indexOf(w) < 0) {
        return false;
      }
    }
    return true;
  }
  function changedOf(t, r) {  // parameter -> today's value, as a Map (any name is safe)
    var found = new Map(), c = r[t.changed_at];
    if (c && typeof c === "object") {
      Object.keys(c).forEach(function (k) { found.set(k, c[k]); });
    }
    return found;
  }
  function renderTable(t, box) {
    var st = ui.get(t.stage);
    var metricSet = new Set(t.metrics);
    var rows = t.rows.map(function (r, i) {
      var copy = r.slice();
      copy.__relpath = t.relpaths[i];
      copy.__text = r.map(cellText).join("\u0001").toLowerCase();
      return copy;
    });
    var words = st.filter.toLowerCase().split(/\s+/).filter(Boolean);
    rows = rows.filter(function (r) { return matchesFilter(t, r, words); });
    if (st.sort !== null) {
      var c = st.sort, sign = st.desc ? -1 : 1;
      rows.sort(function (a, b) {
        var ma = a[c] === null || a[c] === undefined, mb = b[c] === null || b[c] === undefined;
        if (ma || mb) { return ma === mb ? 0 : (ma ? 1 : -1); }  // missing last, both ways
        return sign * cmp(a[c], b[c]);
      });
    }
    var table = el("table", {"class": "results", "data-stage": t.stage});
    var head = el("tr");
    t.columns.forEach(function (name, i) {
      var th = el("th", {"data-col": name}, name);
      if (st.sort === i) { th.className = st.desc ? "sorted-desc" : "sorted-asc"; }
      th.addEventListener("click", function () {
        st.desc = st.sort === i ? !st.desc : false;
        st.sort = i;
        renderTable(t, box);
      });
      head.appendChild(th);
    });
    table.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    rows.slice(0, MAX_ROWS).forEach(function (r) {
      var tr = el("tr", {"data-relpath": r.__relpath});
      var changed = changedOf(t, r);
      t.columns.forEach(function (name, i) {
        var metric = metricSet.has(name);
        var td = el("td", {title: cellText(r[i])}, metric ? fmt(r[i]) : cellText(r[i]));
        if (metric) { td.className = "metric"; }
        if (i === t.changed_at) {
          td.textContent = Array.from(changed.keys()).join(", ");
        } else if (i < t.params.length && changed.has(name)) {  // built with another value
          td.className = "changed";
          td.textContent = cellText(r[i]) + " (now " + cellText(changed.get(name)) + ")";
          td.title = "built with " + cellText(r[i]) + "; the experiment gives " +
                     cellText(changed.get(name)) + " today";
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
    box.textContent = "";
    box.appendChild(table);
    var note = box.parentNode.querySelector(".shown");
    note.textContent = rows.length > MAX_ROWS
      ? "showing " + MAX_ROWS + " of " + rows.length + " matching rows (" + t.rows.length +
        " in all); filter to narrow"
      : rows.length + " of " + t.rows.length + " rows";
  }
  function renderTables() {
    var root = document.getElementById("tables");
    root.textContent = "";
    data.tables.forEach(function (t) {
      if (!ui.has(t.stage)) {
        ui.set(t.stage, {sort: null, desc: false, filter: "",
                         group: t.swept.length > 1 ? t.swept[t.swept.length - 1] : ""});
      }
      var section = el("div", {"class": "stage-table", "data-stage": t.stage});
      section.appendChild(el("h3", {}, t.stage));
      var controls = el("div", {"class": "controls"});
      var input = el("input", {type: "search", placeholder: "filter: words or key=value",
                               "aria-label": "filter " + t.stage});
      input.value = ui.get(t.stage).filter;
      var box = el("div", {"class": "tablebox"});
      input.addEventListener("input", function () {
        ui.get(t.stage).filter = input.value;
        renderTable(t, box);
      });
      controls.appendChild(input);
      controls.appendChild(el("span", {"class": "shown hint"}));
      section.appendChild(controls);
      section.appendChild(box);
      root.appendChild(section);
      guarded(section, function () { renderTable(t, box); });
    });
  }
  function guarded(section, draw) {  // one stage that cannot be drawn says so; the rest stay
    try {
      draw();
    } catch (e) {
      section.appendChild(el("p", {"class": "hint error"}, "could not draw this: " + e));
    }
  }

  // -- plots ----------------------------------------------------------------------------
  function scale(values, lo, hi) {  // numeric axis: linear, or log for wide positive sweeps
    var min = Math.min.apply(null, values), max = Math.max.apply(null, values);
    var log = min > 0 && max / min >= 50;
    var f = log ? Math.log10 : function (v) { return v; };
    var a = f(min), b = f(max);
    if (a === b) { a -= 1; b += 1; }
    var s = function (v) { return lo + (f(v) - a) / (b - a) * (hi - lo); };
    s.ticks = [];
    for (var i = 0; i <= 3; i++) {
      var t = a + (b - a) * i / 3;
      s.ticks.push(log ? Math.pow(10, t) : t);
    }
    s.log = log;
    return s;
  }
  function plot(t, metric, param, group) {
    var W = 380, H = 250, L = 56, R = 12, T = 24, B = 40;
    var mi = t.columns.indexOf(metric), pi = t.columns.indexOf(param);
    var gi = group ? t.columns.indexOf(group) : -1;
    var pts = [];
    t.rows.forEach(function (r, i) {  // the artifact's own state, whatever a column is called
      var made = t.states[i] === "built" || t.states[i] === "stale";
      if (made && isNum(r[mi])) {
        pts.push({x: r[pi], y: r[mi], g: gi >= 0 ? cellText(r[gi]) : "", rel: t.relpaths[i],
                  stale: t.states[i] === "stale" ? t.details[i] : null});
      }
    });
    var svg = svgEl("svg", {"class": "plot", width: W, height: H, viewBox: "0 0 " + W + " " + H,
                            "data-metric": metric, "data-param": param});
    svg.appendChild(svgEl("text", {x: L, y: 15, "class": "title"}, metric + " vs " + param));
    if (!pts.length) {
      svg.appendChild(svgEl("text", {x: L, y: H / 2}, "no built artifact has this metric"));
      return svg;
    }
    var numeric = pts.every(function (p) { return isNum(p.x); });
    var xs, cats = [];
    if (numeric) {
      xs = scale(pts.map(function (p) { return p.x; }), L + 8, W - R - 8);
    } else {
      pts.forEach(function (p) { var k = cellText(p.x); if (cats.indexOf(k) < 0) { cats.push(k); } });
      cats.sort();
      xs = function (v) { return L + (cats.indexOf(cellText(v)) + 0.5) * (W - L - R) / cats.length; };
    }
    var ys = scale(pts.map(function (p) { return p.y; }), H - B, T);
    if (ys.log) { ys = scaleLinear(pts, H - B, T); }
    svg.appendChild(svgEl("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999"}));
    svg.appendChild(svgEl("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#999"}));
    ys.ticks.forEach(function (v) {
      svg.appendChild(svgEl("text", {x: L - 4, y: ys(v) + 4, "text-anchor": "end"}, fmt(v)));
    });
    (numeric ? xs.ticks : cats).forEach(function (v) {
      var label = numeric ? fmt(v) : v;
      if (label.length > 12) { label = label.slice(0, 11) + "…"; }
      svg.appendChild(svgEl("text", {x: xs(v), y: H - B + 14, "text-anchor": "middle"}, label));
    });
    svg.appendChild(svgEl("text", {x: (L + W) / 2, y: H - 6, "text-anchor": "middle"},
                          param + (numeric && xs.log ? " (log)" : "")));
    var groups = [];
    pts.forEach(function (p) { if (groups.indexOf(p.g) < 0) { groups.push(p.g); } });
    groups.sort();
    groups.forEach(function (g, gi2) {
      var color = COLORS[gi2 % COLORS.length];
      var mine = pts.filter(function (p) { return p.g === g; });
      var byX = new Map();
      mine.forEach(function (p) {
        var k = cellText(p.x);
        if (!byX.has(k)) { byX.set(k, {x: p.x, ys: []}); }
        byX.get(k).ys.push(p.y);
      });
      var line = Array.from(byX.values());
      line.sort(function (a, b) { return numeric ? a.x - b.x : cmp(cellText(a.x), cellText(b.x)); });
      if (line.length > 1) {
        var d = line.map(function (q) {
          var m = q.ys.reduce(function (s, v) { return s + v; }, 0) / q.ys.length;
          return xs(q.x).toFixed(1) + "," + ys(m).toFixed(1);
        }).join(" ");
        svg.appendChild(svgEl("polyline", {points: d, fill: "none", stroke: color,
                                           "stroke-width": 1.5, "stroke-opacity": 0.7}));
      }
      mine.forEach(function (p) {
        var c = svgEl("circle", {cx: xs(p.x).toFixed(1), cy: ys(p.y).toFixed(1), r: 4,
                                 fill: color, stroke: color,
                                 "class": p.stale === null ? "pt" : "pt stale",
                                 "data-relpath": p.rel});
        c.appendChild(svgEl("title", {}, p.rel + "\n" + metric + " = " + fmt(p.y) + "\n" +
                            param + " = " + cellText(p.x) + (group ? "\n" + group + " = " + p.g : "") +
                            (p.stale === null ? "" : "\nstale: " + p.stale)));
        svg.appendChild(c);
      });
    });
    return svg;
  }
  function scaleLinear(pts, lo, hi) {  // metrics keep a linear axis
    var vals = pts.map(function (p) { return p.y; });
    var min = Math.min.apply(null, vals), max = Math.max.apply(null, vals);
    if (min === max) { min -= 1; max += 1; }
    var s = function (v) { return lo + (v - min) / (max - min) * (hi - lo); };
    s.ticks = [0, 1, 2, 3].map(function (i) { return min + (max - min) * i / 3; });
    return s;
  }
  function renderPlots() {
    var root = document.getElementById("plot-stages");
    root.textContent = "";
    data.tables.forEach(function (t) {
      var st = ui.get(t.stage);
      var section = el("div", {"class": "stage-plots", "data-stage": t.stage});
      root.appendChild(section);
      guarded(section, function () { drawPlots(t, st, section); });
    });
  }
  function drawPlots(t, st, section) {
    section.appendChild(el("h3", {}, t.stage));
    var numericMetrics = t.metrics.filter(function (m) {
      var i = t.columns.indexOf(m);
      return t.rows.some(function (r) { return isNum(r[i]); });
    });
    if (!numericMetrics.length || !t.swept.length) {
      section.appendChild(el("p", {"class": "hint"}, !t.swept.length
        ? "No swept parameter in this stage." : "No numeric metric yet (metrics.json)."));
      return;
    }
    var controls = el("div", {"class": "controls"});
    var label = el("label", {}, "one line per value of ");
    var select = el("select", {"class": "group-by", "aria-label": "group " + t.stage});
    select.appendChild(el("option", {value: ""}, "(none)"));
    t.swept.forEach(function (p) {
      var o = el("option", {value: p}, p);
      if (p === st.group) { o.selected = true; }
      select.appendChild(o);
    });
    select.addEventListener("change", function () { st.group = select.value; renderPlots(); });
    label.appendChild(select);
    controls.appendChild(label);
    section.appendChild(controls);
    var legend = el("div", {"class": "plot-legend"});
    if (st.group) {
      var gi = t.columns.indexOf(st.group), seen = [];
      t.rows.forEach(function (r) { var k = cellText(r[gi]); if (seen.indexOf(k) < 0) { seen.push(k); } });
      seen.sort().forEach(function (k, i) {
        var s = el("span", {}, "● " + st.group + " = " + k);
        s.style.color = COLORS[i % COLORS.length];
        legend.appendChild(s);
      });
    }
    section.appendChild(legend);
    var box = el("div", {"class": "plots"});
    numericMetrics.forEach(function (m) {
      t.swept.forEach(function (p) {
        if (p !== st.group) { box.appendChild(plot(t, m, p, st.group)); }
      });
    });
    section.appendChild(box);
  }

  // -- live -----------------------------------------------------------------------------
  function swap(id, html) {
    var node = document.getElementById(id);
    if (!node || node.__html === html) { return; }
    var open = new Set();
    node.querySelectorAll("details[open]").forEach(function (d) {
      open.add((d.getAttribute("data-relpath") || "") + "\u0001" + d.className);
    });
    node.innerHTML = html;  // rendered and escaped by the server's templates, like the page
    node.__html = html;
    node.querySelectorAll("details").forEach(function (d) {
      if (open.has((d.getAttribute("data-relpath") || "") + "\u0001" + d.className)) {
        d.open = true;
      }
    });
  }
  function poll(url) {
    var state = document.getElementById("live-state");
    fetch(url, {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (live) {
      Object.keys(live.html).forEach(function (id) { swap(id, live.html[id]); });
      document.getElementById("generated").textContent = live.generated_at;
      if (JSON.stringify(live.data.tables) !== JSON.stringify(data.tables)) {
        data = live.data;
        renderTables();
        renderPlots();
      }
      if (state) { state.textContent = ""; }
    }).catch(function (e) {
      if (state) { state.textContent = "(not refreshed: " + e.message + ")"; }
    });
  }

  var liveUrl = document.body.getAttribute("data-live");
  if (liveUrl) {  // first: whatever the data holds, a live page keeps refreshing
    var every = (data.refresh_s || 5) * 1000;
    setInterval(function () { poll(liveUrl); }, every);
  }
  var t0 = performance.now();
  renderTables();
  var t1 = performance.now();
  renderPlots();
  window.reportTimings = {tables_ms: t1 - t0, plots_ms: performance.now() - t1};
}());
