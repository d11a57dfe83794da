// The supervision cockpit's charts (/cockpit, /leaders), drawn with the Apache ECharts served from
// /static/vendor/echarts. The series come from a <script type="application/json"> block of the
// page (data, not script: the CSP allows it). Canvas renderer; tooltips in ECharts' rich-text mode,
// drawn on the canvas, because its HTML tooltips carry inline styles the CSP (default-src 'self')
// refuses. Every figure is also printed as text on the page: without this script nothing is lost
// but the pictures. The period and locality drop-downs submit their form when changed.
(function () {
  "use strict";

  // Submit the filter forms on change (the button stays for browsers without script).
  ["period-select", "locality-select"].forEach(function (id) {
    var el = document.getElementById(id);
    if (el && el.form) {
      el.addEventListener("change", function () { el.form.submit(); });
    }
  });

  if (typeof window.echarts === "undefined") { return; }

  function readData(id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    try { return JSON.parse(el.textContent); } catch (e) { return null; }
  }

  var css = getComputedStyle(document.documentElement);
  var fg = (css.getPropertyValue("--fg") || "#1f2328").trim();
  var muted = (css.getPropertyValue("--muted") || "#59636e").trim();
  var PALETTE = ["#b22222", "#d9822b", "#2f6fb0", "#3a8f5c", "#7a4fb3", "#8c8c3a", "#c05780", "#5b6b7a"];
  var charts = [];

  function base(extra) {
    var option = {
      color: PALETTE,
      textStyle: { color: fg, fontFamily: "inherit" },
      tooltip: { renderMode: "richText", confine: true },
      animation: false
    };
    for (var k in extra) { if (Object.prototype.hasOwnProperty.call(extra, k)) { option[k] = extra[k]; } }
    return option;
  }

  function axis(names) {
    return { type: "category", data: names, axisLabel: { color: muted, interval: 0, hideOverlap: true } };
  }

  function valueAxis(extra) {
    var a = { type: "value", minInterval: 1, axisLabel: { color: muted }, splitLine: { lineStyle: { opacity: 0.3 } } };
    for (var k in (extra || {})) { a[k] = extra[k]; }
    return a;
  }

  function legend() { return { top: 0, textStyle: { color: fg } }; }

  function pie(items, name) {
    var nonzero = items.filter(function (d) { return d.value > 0; });
    return base({
      tooltip: { renderMode: "richText", confine: true, trigger: "item", formatter: "{b}：{c} 件（{d}%）" },
      legend: { bottom: 0, textStyle: { color: fg }, type: "scroll" },
      series: [{
        name: name, type: "pie", radius: ["38%", "66%"], center: ["50%", "45%"],
        data: nonzero.length ? nonzero : [{ name: "暂无数据", value: 0 }],
        label: { color: fg, formatter: "{b}\n{c}（{d}%）" },
        emphasis: { scale: false }
      }]
    });
  }

  var BUILDERS = {
    trend: function (d) {
      var t = d.trend;
      return base({
        title: { text: d.period + " · " + d.locality + " 登记趋势（" + (t.unit === "day" ? "每日" : "每月") + "）",
                 left: 0, textStyle: { fontSize: 14, color: fg } },
        tooltip: { renderMode: "richText", confine: true, trigger: "axis" },
        legend: { top: 0, right: 0, textStyle: { color: fg } },
        grid: { left: 44, right: 16, top: 40, bottom: 28 },
        xAxis: axis(t.buckets),
        yAxis: valueAxis(),
        series: [
          { name: "批次", type: "line", data: t.batches, smooth: true, symbolSize: 5, areaStyle: { opacity: 0.12 } },
          { name: "人次", type: "line", data: t.persons, smooth: true, symbolSize: 5 }
        ]
      });
    },
    channels: function (d) {
      var c = d.channels;
      return base({
        tooltip: { renderMode: "richText", confine: true, trigger: "axis" },
        legend: legend(),
        grid: { left: 40, right: 12, top: 32, bottom: 28 },
        xAxis: axis(c.names),
        yAxis: valueAxis(),
        series: [
          { name: "批次", type: "bar", data: c.batches, label: { show: true, position: "top", color: fg } },
          { name: "人次", type: "bar", data: c.persons, label: { show: true, position: "top", color: fg } }
        ]
      });
    },
    repeat: function (d) { return pie(d.repeat, "登记批次"); },
    categories: function (d) {
      var items = d.categories;
      return base({
        tooltip: { renderMode: "richText", confine: true, trigger: "axis" },
        grid: { left: 72, right: 36, top: 8, bottom: 8, containLabel: false },
        xAxis: valueAxis(),
        yAxis: { type: "category", inverse: true, data: items.map(function (x) { return x.name; }), axisLabel: { color: fg } },
        series: [{ name: "案件", type: "bar", data: items.map(function (x) { return x.value; }),
                   label: { show: true, position: "right", color: fg } }]
      });
    },
    risks: function (d) {
      var option = pie(d.risks, "案件");
      option.color = ["#b22222", "#d9822b", "#3a8f5c"];
      return option;
    },
    on_time: function (d) {
      var o = d.on_time;
      return base({
        tooltip: { renderMode: "richText", confine: true, trigger: "axis", valueFormatter: function (v) { return v == null ? "—" : v + "%"; } },
        grid: { left: 44, right: 16, top: 16, bottom: 28 },
        xAxis: axis(o.names),
        yAxis: valueAxis({ max: 100, minInterval: 0, axisLabel: { color: muted, formatter: "{value}%" } }),
        series: [{ name: "按期率", type: "bar", barMaxWidth: 64, data: o.values,
                   label: { show: true, position: "top", color: fg, formatter: function (p) { return p.value == null ? "—" : p.value + "%"; } } }]
      });
    },
    letters: function (d) {
      var l = d.letters;
      return base({
        tooltip: { renderMode: "richText", confine: true, trigger: "axis" },
        grid: { left: 40, right: 12, top: 20, bottom: 28 },
        xAxis: axis(l.names),
        yAxis: valueAxis(),
        series: [{ name: "份数", type: "bar", barMaxWidth: 56, data: l.values, label: { show: true, position: "top", color: fg } }]
      });
    },
    leaders: function (d) {
      return base({
        tooltip: { renderMode: "richText", confine: true, trigger: "axis", axisPointer: { type: "shadow" } },
        legend: legend(),
        grid: { left: 8, right: 56, top: 32, bottom: 8, containLabel: true },
        xAxis: valueAxis(),
        yAxis: { type: "category", inverse: true, data: d.leaders, axisLabel: { color: fg } },
        series: [
          { name: "已办结", type: "bar", stack: "cases", data: d.closed, color: "#3a8f5c" },
          { name: "在办", type: "bar", stack: "cases", data: d.open, color: "#d9822b",
            label: { show: true, position: "right", color: fg,
                     formatter: function (p) { return "进度 " + d.progress[p.dataIndex] + "%"; } } }
        ]
      });
    }
  };

  var data = readData("cockpit-data") || readData("leaders-data");
  if (!data) { return; }
  var nodes = document.querySelectorAll("[data-chart]");
  Array.prototype.forEach.call(nodes, function (node) {
    var build = BUILDERS[node.getAttribute("data-chart")];
    if (!build) { return; }
    if (node.getAttribute("data-chart") === "leaders") {
      // One bar per leader: the chart grows with the list (a CSSOM property, which the CSP allows;
      // only style attributes in markup are refused).
      node.style.height = (64 + 34 * Math.max(1, data.leaders.length)) + "px";
    }
    var chart = window.echarts.init(node, null, { renderer: "canvas" });
    chart.setOption(build(data));
    node.setAttribute("data-drawn", "yes");
    charts.push(chart);
  });

  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  // Printing: draw at the printed width, then back.
  window.addEventListener("beforeprint", function () { charts.forEach(function (c) { c.resize(); }); });
  window.addEventListener("afterprint", function () { charts.forEach(function (c) { c.resize(); }); });
})();
