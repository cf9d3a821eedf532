// ServiceGrid workflow canvas (st.components.v2, plain JS, no build step, no network).
// Palette drag-drop, typed ports with refusals explained, multi-select, move, delete, pan/zoom/fit,
// issue badges and run-status colours. Python owns the revision counter: the canvas adopts
// data.graph only when data.rev is higher than its own (never in the middle of a gesture) and
// reports the whole graph after each discrete action (never per pointer move), stamped with the
// rev it was based on; Python replays a report based on an older rev onto its newer graph
// (docs/designer.md, "Revisions"). All user text is drawn with textContent (a note's text too).

let live = null;  // the canvas root drawn last (a remount replaces it; gestures begun on the old one finish here)
const NODE_W = 180, HEAD_H = 26, SUB_H = 16, PORT_H = 18, PAD_B = 8;
const BORDER_T = 6;  // a node's top border (canvas.css): its ports sit below it, and so do the wires' ends
const NOTE_W = 220, NOTE_CHARS = 4000, NOTES_MAX = 200;  // engine.workflow.NoteSpec / MAX_NOTES
const NOTE_COLORS = ["yellow", "blue", "green", "pink", "grey"], NOTE_MAX = 2000;
const FOLD_H = 30;  // a folded frame's height: its title line

export default function (component) {
  const { data, parentElement, setStateValue, setTriggerValue } = component;
  let root = parentElement.querySelector(".sg-root");
  if (!root) root = build(parentElement);
  live = root;
  const m = root.__m;
  m.api = { setStateValue, setTriggerValue };
  m.kindColors = data.kindColors || {};
  if (data.height) root.style.height = data.height + "px";
  const paletteKey = JSON.stringify(data.palette || []);  // a component's ports can change under its name
  if (m.paletteKey !== paletteKey) {
    m.palette = {};
    for (const a of data.palette || []) m.palette[a.name] = a;
    m.paletteKey = paletteKey;
    buildPalette(root, m, data.palette || []);
  }
  const first = m.rev < 0;
  m.doc = data.doc || "";
  const ack = data.ack;
  if (ack && ack.sid === m.sid && ack.seq >= m.acked) { m.acked = ack.seq; m.waitSince = 0; }
  if (first) resume(root, m, data);                  // a remounted canvas takes up its last unacked report
  if ((data.rev ?? 0) > m.rev) {
    if (m.gestures > 0 || awaiting(m)) m.pending = data;  // adopt once the drag ends / Python has our reports
    else adopt(root, m, data);
  } else adoptPending(root, m);
  drawScope(root, m, data.scope || null);
  m.issues = data.issues || {};
  m.status = data.status || {};
  const counted = JSON.stringify(data.counted || {});
  if (counted !== m.countedKey) { m.countedKey = counted; m.counted = data.counted || {}; drawEdges(root, m); }
  applyDecorations(root, m);
  if (orphanDrops.length && root.isConnected) {      // drops that ended while this canvas was mounting
    const drops = orphanDrops.filter(d => Date.now() - d.time < 10000);
    orphanDrops = [];
    for (const d of drops) drop(root, m, d.spec, d.x, d.y);
  }
  const notice = data.notice;
  if (notice && notice.id !== m.lastNotice) { m.lastNotice = notice.id; if (m.lastNotice !== undefined && !first) toast(root, notice.text, notice.kind || "info"); }
}

// Python's graph at a newer revision replaces the local one (Python already holds every action
// the canvas reported, or has refused it with a message); reports carry the rev they were based on.
function adopt(root, m, data) {
  const first = m.rev < 0;
  m.rev = data.rev ?? 0; m.pending = null;
  setGraph(m, data.graph);
  renderAll(root, m);
  if (data.fit || first) fitView(root, m);
  applyDecorations(root, m);
}

// Nodes, edges and selection from a graph: Python's (data.graph) or a report taken up.
function setGraph(m, graph) {
  m.nodes = {};
  for (const n of graph?.nodes || []) m.nodes[n.id] = { ...n };
  m.edges = (graph?.edges || []).map(e => ({ ...e }));
  m.notes = {};
  for (const n of graph?.notes || []) m.notes[n.id] = { ...n };
  m.selNodes = new Set((graph?.selected || []).filter(id => m.nodes[id]));
  m.selEdges = new Set(); m.selNotes = new Set();
}
// A withheld push, once no gesture is under way and Python has taken the last report.
function adoptPending(root, m) {
  if (m.pending && !m.gestures && !awaiting(m)) adopt(root, m, m.pending);
}

function build(host) {
  const root = document.createElement("div");
  root.className = "sg-root";
  root.dataset.testid = "sg-canvas-root";
  root.innerHTML = `
    <div class="sg-palette" data-testid="sg-palette">
      <input class="sg-search" data-testid="sg-search" type="search" placeholder="Search agents" aria-label="Search agents">
      <div class="sg-pal-list"></div>
    </div>
    <div class="sg-main">
      <div class="sg-toolbar" role="toolbar">
        <button data-cmd="undo" data-testid="sg-undo" title="Undo (Ctrl+Z)">↶ Undo</button>
        <button data-cmd="redo" data-testid="sg-redo" title="Redo (Ctrl+Y)">↷ Redo</button>
        <button data-act="zoom-in" data-testid="sg-zoom-in" title="Zoom in">+</button>
        <button data-act="zoom-out" data-testid="sg-zoom-out" title="Zoom out">-</button>
        <button data-act="fit" data-testid="sg-fit" title="Fit to view (F)">Fit</button>
        <button data-act="find" data-testid="sg-find" title="Find a node by id or label (Ctrl+F)">Find</button>
        <button data-cmd="layout" data-testid="sg-layout" title="Arrange in layers">Auto layout</button>
        <button data-act="duplicate" data-testid="sg-duplicate" title="Duplicate the selection (Ctrl+D); Ctrl+C / Ctrl+V copy and paste it">Duplicate</button>
        <button data-act="disable" data-testid="sg-disable" title="Disable or enable the selected nodes (Ctrl+M): a disabled node, and what follows it, does not run">Disable</button>
        <button data-act="bypass" data-testid="sg-bypass" title="Bypass the selected nodes (Ctrl+B): a bypassed node does not run, its one input goes straight on">Bypass</button>
        <button data-act="group" data-testid="sg-group" title="Group the selected nodes into a component (Ctrl+G): one node that runs them, reusable from the palette">Group</button>
        <button data-act="ungroup" data-testid="sg-ungroup" title="Ungroup the selected component: its nodes back in its place (Ctrl+Shift+G)">Ungroup</button>
        <button data-act="note" data-testid="sg-add-note" title="Add a note (N): text for people, it never runs">Note</button>
        <button data-act="delete" data-testid="sg-delete" title="Delete selection (Del)">Delete</button>
        <button data-act="keys" data-testid="sg-keys" title="Keyboard shortcuts (?)" aria-label="Keyboard shortcuts">?</button>
      </div>
      <div class="sg-canvas" tabindex="0" data-testid="sg-canvas">
        <div class="sg-world"><div class="sg-notes"></div><svg class="sg-edges"></svg><div class="sg-nodes"></div></div>
        <div class="sg-band"></div>
        <svg class="sg-minimap" data-testid="sg-minimap" hidden aria-label="Overview: click or drag to move the view"></svg>
        <div class="sg-empty">Drag agents from the palette onto the canvas (or double-click here) · drag an output ● to an input ●</div>
        <div class="sg-toasts" data-testid="sg-toasts" aria-live="polite"></div>
        <nav class="sg-crumbs" data-testid="sg-crumbs" aria-label="Where you are" hidden></nav>
      </div>
    </div>`;
  host.appendChild(root);
  const m = root.__m = { nodes: {}, edges: [], notes: {}, paths: {}, labels: {}, hits: {}, selNodes: new Set(), selEdges: new Set(),
    selNotes: new Set(), rev: -1,
    pan: { x: 20, y: 20 }, zoom: 1, issues: {}, status: {}, palette: {}, gestures: 0, pending: null,
    sid: "", seq: 0, acked: 0, waitSince: 0, doc: "" };
  const saved = loadOutbox();                        // one sid per browser tab, across remounts
  m.sid = saved?.sid || Math.random().toString(36).slice(2) + Date.now().toString(36);
  m.mountSeq = saved?.seq || 0;                      // reports up to this one are older than this canvas
  m.timer = setInterval(() => {                       // a remount mid-gesture: the old canvas's late report
    if (!root.isConnected) { clearInterval(m.timer); return; }
    const s = loadOutbox();
    if (s && s.sid === m.sid && s.seq > Math.max(m.seq, m.mountSeq) && s.report && s.doc === m.doc && !m.gestures) {
      takeUp(root, m, s); emit(m);
    }
  }, 250);
  const canvas = root.querySelector(".sg-canvas");
  canvas.addEventListener("pointerdown", ev => backgroundDown(root, m, ev));
  canvas.addEventListener("dblclick", ev => { if (isBackground(ev.target)) quickAdd(root, m, ev.clientX, ev.clientY, null); });
  canvas.addEventListener("wheel", ev => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(root, m, ev.deltaY < 0 ? 1.1 : 1 / 1.1, ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  canvas.addEventListener("keydown", ev => keyDown(root, m, ev));
  for (const b of root.querySelectorAll(".sg-toolbar button")) b.addEventListener("click", () => {
    if (b.dataset.cmd) command(m, b.dataset.cmd);
    const r = canvas.getBoundingClientRect();
    if (b.dataset.act === "zoom-in") zoomAt(root, m, 1.2, r.width / 2, r.height / 2);
    if (b.dataset.act === "zoom-out") zoomAt(root, m, 1 / 1.2, r.width / 2, r.height / 2);
    if (b.dataset.act === "fit") fitView(root, m);
    if (b.dataset.act === "delete") deleteSelection(root, m);
    if (b.dataset.act === "note") addNote(root, m);
    if (b.dataset.act === "find") findNode(root, m);
    if (b.dataset.act === "duplicate") duplicate(root, m, [...m.selNodes], [...m.selNotes]);
    if (b.dataset.act === "disable") toggleFlag(root, m, "disable");
    if (b.dataset.act === "bypass") toggleFlag(root, m, "bypass");
    if (b.dataset.act === "group") grouping(root, m, false);
    if (b.dataset.act === "ungroup") grouping(root, m, true);
    if (b.dataset.act === "keys") toggleKeys(root);
  });
  root.querySelector(".sg-search").addEventListener("input", ev => filterPalette(root, ev.target.value));
  return root;
}

// each command has an id of its own: Python handles it once even when Streamlit delivers it twice
function command(m, name, extra) {
  m.cmds = (m.cmds || 0) + 1;
  m.cmdTag = m.cmdTag || Math.random().toString(36).slice(2) + Date.now().toString(36);
  m.api.setTriggerValue("command", { ...(extra || {}), name, rev: m.rev, cid: `${m.cmdTag}:${m.cmds}` });
}

// Copies are made by Python (it holds the parameters the canvas never sees) and arrive as its push.
function duplicate(root, m, ids, notes) {
  if (!ids.length && !notes.length) { toast(root, "select nodes or notes to copy first", "info"); return; }
  command(m, "duplicate", { ids, notes });
}

// Python flips the flag (it owns the workflow) and pushes the graph back drawn so
function toggleFlag(root, m, name) {
  if (!m.selNodes.size) { toast(root, `select the nodes to ${name === "breakpoint" ? "put a breakpoint on" : name} first`, "info"); return; }
  command(m, name, { ids: [...m.selNodes] });
}

// Python makes the component (it holds the parameters and knows the ports) and pushes the graph back
function grouping(root, m, undo) {
  const ids = [...m.selNodes].filter(id => !undo || (m.nodes[id] && m.nodes[id].component));
  if (!ids.length) {
    toast(root, undo ? "select a component's node to ungroup it" : "select the nodes to group into a component first", "info");
    return;
  }
  command(m, undo ? "ungroup" : "group", { ids });
}

// A component opened to edit inside it (Python draws its inside and the path back), and the way back.
function openComponent(root, m, id) {
  if (m.gestures > 0) return;
  command(m, "open", { id });
}

// The path above the graph while a component is open: the workflow (a link back) › the component.
function drawScope(root, m, scope) {
  const nav = root.querySelector(".sg-crumbs"), key = JSON.stringify(scope);
  if (key === m.scopeKey) return;
  m.scopeKey = key; m.scope = scope; nav.textContent = "";
  nav.hidden = !scope;
  root.classList.toggle("inside", !!scope);
  if (!scope) return;
  const crumb = (text, depth, title) => {              // a link back: 0 the workflow, k the k-th component on the way
    const b = document.createElement("button"); b.className = "sg-crumb"; b.textContent = text; b.title = title;
    b.dataset.testid = depth === 0 ? "sg-crumb-workflow" : "sg-crumb-trail";
    b.addEventListener("pointerdown", ev => ev.stopPropagation());
    b.addEventListener("click", ev => { ev.stopPropagation(); command(m, "leave", { depth }); });
    const sep = document.createElement("span"); sep.textContent = "›"; sep.className = "sg-crumb-sep";
    nav.append(b, sep);
  };
  crumb(scope.workflow || "workflow", 0, "Back to the workflow (closes the component)");
  (scope.trail || []).forEach((name, i) => crumb(name, i + 1, `Back to component ${name}`));
  const here = document.createElement("b"); here.dataset.testid = "sg-crumb-component";
  here.textContent = `${scope.component}`;
  const uses = document.createElement("small");
  uses.textContent = scope.instances === 1 ? "1 node runs it" : `${scope.instances} nodes run it`;
  nav.append(here, uses);
}

const SHORTCUTS = [
  ["Double-click the canvas", "add an agent (search box)"], ["Drop a wire on the canvas", "add the next agent, wired"],
  ["Ctrl+F", "find a node"], ["Double-click a title", "rename it"], ["Del", "delete the selection"],
  ["Ctrl+A", "select all"], ["Shift+click, Shift+drag", "add to the selection, select with a band"],
  ["Arrow keys (Shift: 50 px)", "move the selection 10 px"], ["Ctrl+D", "duplicate"],
  ["Ctrl+C, Ctrl+V", "copy, paste (here or in another workflow)"], ["Ctrl+Shift+V", "paste with the wires in"],
  ["Ctrl+M", "disable / enable: it and what follows do not run"], ["Ctrl+B", "bypass: its input goes straight on"],
  ["F9", "breakpoint: runs pause before it starts"],
  ["Ctrl+G", "group the selection into a component"], ["Ctrl+Shift+G", "ungroup a component"],
  ["Double-click a component (or ⤢)", "open it to edit inside; the path above goes back"],
  ["N", "add a note"], ["Alt+drag a frame", "move the frame without its nodes"],
  ["Ctrl+Z, Ctrl+Y", "undo, redo"], ["F", "fit the graph in view"], ["?", "this list"],
];

// The list of shortcuts, drawn from constants with textContent; ? or Escape closes it.
function toggleKeys(root) {
  const canvas = root.querySelector(".sg-canvas"), open = canvas.querySelector(".sg-keys");
  if (open) { open.remove(); return; }
  const box = document.createElement("div"); box.className = "sg-keys"; box.dataset.testid = "sg-keys-panel";
  const head = document.createElement("b"); head.textContent = "Keyboard and mouse"; box.appendChild(head);
  for (const [keys, what] of SHORTCUTS) {
    const row = document.createElement("div");
    const k = document.createElement("kbd"); k.textContent = keys;
    const t = document.createElement("span"); t.textContent = what;
    row.append(k, t); box.appendChild(row);
  }
  box.addEventListener("pointerdown", ev => { ev.stopPropagation(); box.remove(); });
  canvas.appendChild(box);
}

function keyDown(root, m, ev) {
  if (ev.target.closest && ev.target.closest("input, textarea")) return;
  const ctrl = ev.ctrlKey || ev.metaKey, key = ev.key.toLowerCase();
  if (ev.key === "Delete" || ev.key === "Backspace") { ev.preventDefault(); deleteSelection(root, m); }
  else if (ctrl && key === "z" && !ev.shiftKey) { ev.preventDefault(); command(m, "undo"); }
  else if (ctrl && (key === "y" || (key === "z" && ev.shiftKey))) { ev.preventDefault(); command(m, "redo"); }
  else if (ctrl && key === "d") { ev.preventDefault(); duplicate(root, m, [...m.selNodes], [...m.selNotes]); }
  else if (ctrl && key === "m") { ev.preventDefault(); toggleFlag(root, m, "disable"); }
  else if (ctrl && key === "b") { ev.preventDefault(); toggleFlag(root, m, "bypass"); }
  else if (ev.key === "F9") { ev.preventDefault(); toggleFlag(root, m, "breakpoint"); }
  else if (ctrl && key === "g") { ev.preventDefault(); grouping(root, m, ev.shiftKey); }
  else if (ctrl && key === "c") {                   // Python keeps the copy: it can go into another workflow
    if (!m.selNodes.size && !m.selNotes.size) { toast(root, "select nodes or notes to copy first", "info"); return; }
    m.clip = { doc: m.doc, ids: [...m.selNodes], notes: [...m.selNotes] };
    command(m, "copy", { ids: m.clip.ids, notes: m.clip.notes });
  }
  else if (ctrl && key === "v") {                   // Shift: with the wires in
    ev.preventDefault();
    // a paste right after its copy may reach Python in the same rerun as it (only the latest command
    // of a burst arrives): a copy made in this workflow travels with the paste
    const here = m.clip && m.clip.doc === m.doc ? { ids: m.clip.ids, notes: m.clip.notes } : {};
    command(m, "paste", { ...here, inputs: ev.shiftKey });
  }
  else if (ctrl && key === "a") { ev.preventDefault(); setSelection(root, m, Object.keys(m.nodes).filter(id => !(m.hiddenIn || {})[id]), []); emit(m); }
  else if (!ctrl && key === "f") fitView(root, m);
  else if (ctrl && key === "f") { ev.preventDefault(); findNode(root, m); }
  else if (!ctrl && key === "n") { ev.preventDefault(); addNote(root, m); }
  else if (ev.key === "?") { ev.preventDefault(); toggleKeys(root); }
  else if (ev.key === "Escape" && root.querySelector(".sg-keys")) root.querySelector(".sg-keys").remove();
  else if (!ctrl && ev.key.startsWith("Arrow") && (m.selNodes.size || m.selNotes.size)) { ev.preventDefault(); nudge(root, m, ev); }
}

// Arrow keys move the selection 10 px (Shift: 50); one report once the keys rest.
function nudge(root, m, ev) {
  const step = ev.shiftKey ? 50 : 10;
  const dx = { ArrowLeft: -step, ArrowRight: step }[ev.key] || 0, dy = { ArrowUp: -step, ArrowDown: step }[ev.key] || 0;
  const moved = [...[...m.selNodes].map(id => m.nodes[id]), ...[...m.selNotes].map(id => m.notes[id])].filter(Boolean);
  for (const k of moved) { k.x += dx; k.y += dy; }
  for (const el of root.querySelectorAll(".sg-node.selected, .sg-note.selected")) {
    const k = (el.classList.contains("sg-note") ? m.notes : m.nodes)[el.dataset.id];
    if (k) setPos(el, k);
  }
  drawEdges(root, m, m.selNodes);
  if (!m.nudging) m.gestures++;                      // a push from Python waits until the keys rest
  clearTimeout(m.nudging);
  m.nudging = setTimeout(() => { m.nudging = 0; m.gestures--; emit(m); adoptPending(root, m); }, 400);
}

// -- palette ---------------------------------------------------------------------------------

function buildPalette(root, m, agents) {
  const list = root.querySelector(".sg-pal-list");
  list.textContent = "";
  const byCat = {};
  for (const a of agents) if (!a.hidden) (byCat[a.category] = byCat[a.category] || []).push(a);  // hidden: Inputs, Outputs
  for (const cat of Object.keys(byCat).sort()) {
    const group = document.createElement("div");
    group.className = "sg-pal-group"; group.dataset.category = cat;
    const h = document.createElement("div"); h.className = "sg-pal-cat"; h.textContent = cat;
    group.appendChild(h);
    for (const a of byCat[cat]) {
      const it = document.createElement("div");
      it.className = "sg-pal-item"; it.dataset.agent = a.name; it.dataset.testid = "sg-pal-item";
      it.dataset.search = `${a.name} ${a.label} ${a.category}`.toLowerCase();
      it.textContent = a.label || a.name; it.title = `${a.name}: ${a.description || ""}`;
      it.style.borderLeftColor = a.color || "#94a3b8";
      it.addEventListener("pointerdown", ev => paletteDrag(root, m, a, it, ev));
      group.appendChild(it);
    }
    list.appendChild(group);
  }
}

function filterPalette(root, text) {
  const q = text.trim().toLowerCase();
  for (const g of root.querySelectorAll(".sg-pal-group")) {
    let shown = 0;
    for (const it of g.querySelectorAll(".sg-pal-item")) {
      const ok = !q || it.dataset.search.includes(q);
      it.hidden = !ok; shown += ok ? 1 : 0;
    }
    g.hidden = shown === 0;
  }
}

function paletteDrag(root, m, spec, item, ev) {
  ev.preventDefault();
  const ghost = item.cloneNode(true); ghost.classList.add("sg-ghost"); root.appendChild(ghost);
  const place = e => { const r = root.getBoundingClientRect(); ghost.style.left = (e.clientX - r.left) + "px"; ghost.style.top = (e.clientY - r.top) + "px"; };
  place(ev);
  gesture(root, m, place, e => {
    ghost.remove();
    if (root.isConnected) { drop(root, m, spec, e.clientX, e.clientY); return; }
    // remounted during the drag (see "resume"): the drop goes to the canvas on the page now, or,
    // while the new one is not drawn yet, to the first one drawn
    if (live && live.isConnected) drop(live, live.__m, spec, e.clientX, e.clientY);
    else orphanDrops.push({ spec, x: e.clientX, y: e.clientY, time: Date.now() });
  });
}

let orphanDrops = [];
function drop(root, m, spec, clientX, clientY) {
  const cr = root.querySelector(".sg-canvas").getBoundingClientRect();
  if (clientX < cr.left || clientX > cr.right || clientY < cr.top || clientY > cr.bottom) return;
  const p = toWorld(root, m, clientX, clientY);
  const wire = wireAt(root, m, clientX, clientY);
  const id = freshId(m, spec.name);
  m.nodes[id] = { id, agent: spec.name, label: spec.label || spec.name, x: Math.round(p.x - NODE_W / 2), y: Math.round(p.y - HEAD_H / 2) };
  if (wire) splice(root, m, wire, id);
  renderAll(root, m);
  setSelection(root, m, [id], []);
  emit(m);
}

// The wire under a drop (a few pixels either way: a wire is thin), or null.
function wireAt(root, m, x, y) {
  const doc = root.getRootNode();
  for (const [dx, dy] of [[0, 0], [0, -4], [0, 4], [-4, 0], [4, 0], [0, -8], [0, 8]]) {
    const el = doc.elementFromPoint(x + dx, y + dy);
    if (el?.matches?.("path.sg-edge, path.sg-edge-hit")) return m.edges.find(e => e.id === el.dataset.id) || null;
  }
  return null;
}

// A node dropped on a wire goes into it, src -> node -> dst, when an input of it reads what the
// wire carries and an output of it gives what the wire's end reads; otherwise it is only added.
function splice(root, m, wire, id) {
  const from = spec(m, m.nodes[wire.src]).outputs.find(o => o.name === wire.srcPort);
  const into = spec(m, m.nodes[wire.dst]).inputs.find(i => i.name === wire.dstPort);
  const s = spec(m, m.nodes[id]);
  const inPort = from && s.inputs.find(p => !kindRefusal(wire.src, from, id, p));
  const outPort = into && s.outputs.find(p => !kindRefusal(id, p, wire.dst, into));
  if (!inPort || !outPort) {
    toast(root, `${id} was added beside the wire ${wire.src} → ${wire.dst}, not into it: its ports do not fit what the wire carries`, "info");
    return;
  }
  m.edges = m.edges.filter(e => e !== wire);
  m.edges.push({ id: `${wire.src}.${wire.srcPort}->${id}.${inPort.name}`, src: wire.src, srcPort: wire.srcPort, dst: id, dstPort: inPort.name },
    { id: `${id}.${outPort.name}->${wire.dst}.${wire.dstPort}`, src: id, srcPort: outPort.name, dst: wire.dst, dstPort: wire.dstPort });
}

function freshId(m, agentName) {
  const plain = agentName.startsWith("component:") ? agentName.slice(10).toLowerCase() : agentName.split(".").pop();
  const base = plain.replace(/[^A-Za-z0-9_-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 24) || "node";
  let i = 1;
  while (m.nodes[`${base}_${i}`]) i++;
  return `${base}_${i}`;
}

// -- drawing ---------------------------------------------------------------------------------

// Whether node k lies wholly inside frame f's (unfolded) box: it moves and folds with the frame.
function inFrame(f, k) {
  return k.x >= f.x && k.y >= f.y && k.x + NODE_W <= f.x + (f.w || NOTE_W) && k.y + HEAD_H <= f.y + f.h;
}

// The nodes hidden by folded frames, by id: each one inside a folded frame.
function foldMap(m) {
  m.hiddenIn = {};
  for (const f of Object.values(m.notes)) {
    if (!f.folded || !f.h) continue;
    for (const k of Object.values(m.nodes)) if (inFrame(f, k)) m.hiddenIn[k.id] = f;
  }
}

function renderAll(root, m) {
  foldMap(m);
  const layer = root.querySelector(".sg-nodes");
  const frag = document.createDocumentFragment();
  for (const n of Object.values(m.nodes)) frag.appendChild(nodeEl(root, m, n));
  layer.textContent = ""; layer.appendChild(frag);
  const notes = root.querySelector(".sg-notes");
  notes.textContent = "";
  for (const n of Object.values(m.notes)) notes.appendChild(noteEl(root, m, n));
  drawEdges(root, m);
  applyDecorations(root, m);
  transform(root, m);
  root.querySelector(".sg-empty").hidden = Object.keys(m.nodes).length > 0 || Object.keys(m.notes).length > 0;
}

// -- notes: text for people on the canvas (never run, never HTML) --------------------------

function noteEl(root, m, n) {
  const el = document.createElement("div");
  el.className = `sg-note c-${NOTE_COLORS.includes(n.color) ? n.color : "yellow"}`;
  el.dataset.id = n.id; el.dataset.testid = "sg-note";
  setPos(el, n); el.style.width = (n.w || NOTE_W) + "px";
  if (n.h) { el.style.height = n.h + "px"; el.classList.add("sized"); }
  if (m.selNotes.has(n.id)) el.classList.add("selected");
  const text = document.createElement("div"); text.className = "sg-note-text";
  text.textContent = n.text || ""; text.dataset.placeholder = "Double-click to write";
  const grip = document.createElement("div"); grip.className = "sg-note-grip"; grip.dataset.testid = "sg-note-grip";
  grip.title = "Drag to make the note wider or narrower";
  grip.addEventListener("pointerdown", ev => noteResize(root, m, n, el, ev));
  const dot = document.createElement("button"); dot.className = "sg-note-color"; dot.dataset.testid = "sg-note-color";
  dot.type = "button"; dot.title = "Change the note's colour"; dot.setAttribute("aria-label", "Change the note's colour");
  dot.addEventListener("pointerdown", ev => ev.stopPropagation());
  dot.addEventListener("click", ev => {
    ev.stopPropagation();
    const next = NOTE_COLORS[(NOTE_COLORS.indexOf(n.color || "yellow") + 1) % NOTE_COLORS.length];
    el.classList.remove(`c-${n.color || "yellow"}`); n.color = next; el.classList.add(`c-${next}`);
    emit(m);
  });
  el.append(text, dot, grip);
  if (n.h) addFoldButton(root, m, n, el);
  if (n.h && n.folded) {
    el.classList.add("folded"); el.style.height = FOLD_H + "px"; grip.hidden = true;
    const count = document.createElement("span"); count.className = "sg-fold-count"; count.dataset.testid = "sg-fold-count";
    el.appendChild(count);
  }
  el.title = "Note: drag to move, double-click to edit, drag the corner to resize (drawn taller than its text it is a " +
    "frame: the nodes inside move with it, unless Alt is held; ▾ folds it), Del to delete";
  el.addEventListener("pointerdown", ev => noteDown(root, m, n, el, ev));
  el.addEventListener("dblclick", ev => { ev.stopPropagation(); editNote(root, m, n, el); });
  return el;
}

// A frame folds: its nodes hide behind its title, and their wires meet its edges.
function addFoldButton(root, m, n, el) {
  const fold = document.createElement("button"); fold.className = "sg-note-fold"; fold.dataset.testid = "sg-note-fold";
  fold.type = "button"; fold.textContent = n.folded ? "\u25B8" : "\u25BE";
  fold.title = n.folded ? "Unfold: show the nodes inside" : "Fold: hide the nodes inside behind the title";
  fold.setAttribute("aria-label", fold.title);
  fold.addEventListener("pointerdown", ev => ev.stopPropagation());
  fold.addEventListener("click", ev => { ev.stopPropagation(); n.folded = !n.folded; renderAll(root, m); emit(m); });
  el.appendChild(fold);
}

function addNote(root, m) {
  if (m.scope) { toast(root, "notes belong to the workflow: go back to it to add one", "info"); return; }
  if (Object.keys(m.notes).length >= NOTES_MAX) { toast(root, `a canvas keeps at most ${NOTES_MAX} notes`, "error"); return; }
  const r = root.querySelector(".sg-canvas").getBoundingClientRect();
  const p = toWorld(root, m, r.left + r.width / 2, r.top + r.height / 3);
  let i = 1;
  while (m.notes[`note_${i}`]) i++;
  const spot = freeSpot(m, Math.round(p.x - NOTE_W / 2), Math.round(p.y));
  const n = m.notes[`note_${i}`] = { id: `note_${i}`, text: "", x: spot.x, y: spot.y, w: NOTE_W };
  m.selNodes = new Set(); m.selEdges = new Set(); m.selNotes = new Set([n.id]);
  renderAll(root, m); emit(m);
  editNote(root, m, n, root.querySelector(`.sg-note[data-id="${CSS.escape(n.id)}"]`));
}

// Where a new note covers no node or note: from (x, y) down in steps, below whatever is there.
function freeSpot(m, x, y) {
  const boxes = [...Object.values(m.nodes).map(k => [k.x, k.y, NODE_W, 100]),
    ...Object.values(m.notes).map(k => [k.x, k.y, k.w || NOTE_W, 70])];
  const hits = yy => boxes.some(([bx, by, bw, bh]) => x < bx + bw && x + NOTE_W > bx && yy < by + bh && yy + 70 > by);
  for (let k = 0; k < 60 && hits(y); k++) y += 40;
  return { x, y };
}

function noteDown(root, m, n, el, ev) {
  if (ev.target.matches("textarea")) return;         // editing: the text area takes the pointer
  ev.stopPropagation(); focus(root);
  const hadNodes = m.selNodes.size > 0;
  m.selNodes = new Set(); m.selEdges = new Set(); m.selNotes = new Set([n.id]);
  refreshSelection(root, m);
  const start = { x: ev.clientX, y: ev.clientY, nx: n.x, ny: n.y };
  // a frame (a note given a height) is a group: the nodes wholly inside it move with it (Alt: alone)
  const inside = n.h && !ev.altKey ? Object.values(m.nodes).filter(k => inFrame(n, k)) : [];
  const from = inside.map(k => ({ x: k.x, y: k.y }));
  const els = inside.map(k => root.querySelector(`.sg-node[data-id="${CSS.escape(k.id)}"]`));
  const ids = new Set(inside.map(k => k.id));
  let moved = false;
  gesture(root, m, e => {
    moved = true;
    const dx = (e.clientX - start.x) / m.zoom, dy = (e.clientY - start.y) / m.zoom;
    n.x = Math.round(start.nx + dx); n.y = Math.round(start.ny + dy);
    setPos(el, n);
    inside.forEach((k, i) => {
      k.x = Math.round(from[i].x + dx); k.y = Math.round(from[i].y + dy);
      if (els[i]) setPos(els[i], k);
    });
    if (inside.length) drawEdges(root, m, ids);
  }, () => { if (moved) drawMinimap(root, m); if (moved || hadNodes) emit(m); });
}

// The corner sets the width and, once dragged down or up, the height (a note that frames nodes).
function noteResize(root, m, n, el, ev) {
  ev.stopPropagation(); ev.preventDefault(); focus(root);
  const start = { x: ev.clientX, y: ev.clientY, w: n.w || NOTE_W, h: n.h || el.offsetHeight };
  let moved = false;
  gesture(root, m, e => {
    moved = true;
    n.w = Math.round(Math.min(NOTE_MAX, Math.max(80, start.w + (e.clientX - start.x) / m.zoom)));
    el.style.width = n.w + "px";
    const dy = (e.clientY - start.y) / m.zoom;
    if (n.h || Math.abs(dy) > 4) {
      n.h = Math.round(Math.min(NOTE_MAX, Math.max(40, start.h + dy)));
      el.style.height = n.h + "px"; el.classList.add("sized");
    }
  }, () => {
    if (!moved) return;
    if (n.h && !el.querySelector(".sg-note-fold")) addFoldButton(root, m, n, el);  // now a frame: it folds
    emit(m);
  });
}

// Edit in place: a plain text area (its value is text, never markup). Ctrl+Enter or a click
// elsewhere keeps the text, Escape drops the edit. A push from Python waits until it ends.
function editNote(root, m, n, el) {
  if (!el || el.querySelector("textarea")) return;
  const text = el.querySelector(".sg-note-text"), area = document.createElement("textarea");
  area.className = "sg-note-edit"; area.dataset.testid = "sg-note-edit"; area.maxLength = NOTE_CHARS;
  area.value = n.text || ""; area.setAttribute("aria-label", "Note text");
  text.hidden = true; el.appendChild(area); el.classList.add("editing");
  m.gestures++;
  let done = false;
  const finish = keep => {
    if (done) return; done = true;
    const value = area.value.slice(0, NOTE_CHARS), changed = keep && value !== (n.text || "");
    if (changed) n.text = value;
    area.remove(); text.hidden = false; text.textContent = n.text || ""; el.classList.remove("editing");
    m.gestures--;
    if (changed) emit(m);
    adoptPending(root, m);
    focus(root);
  };
  area.addEventListener("pointerdown", ev => ev.stopPropagation());
  area.addEventListener("keydown", ev => {
    ev.stopPropagation();
    if (ev.key === "Escape") { ev.preventDefault(); finish(false); }
    else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); finish(true); }
  });
  area.addEventListener("blur", () => finish(true));
  area.focus();
}

function setPos(el, k) { el.style.left = k.x + "px"; el.style.top = k.y + "px"; }  // a node's or a note's place

function spec(m, n) { return m.palette[n.agent] || { inputs: [], outputs: [], missing: true }; }

function pinIcon() {  // drawn, not an emoji: every browser has it
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "sg-pin"); svg.setAttribute("viewBox", "0 0 10 14"); svg.dataset.testid = "sg-pin";
  const head = document.createElementNS(ns, "circle");
  head.setAttribute("cx", "5"); head.setAttribute("cy", "4.5"); head.setAttribute("r", "3.6");
  const point = document.createElementNS(ns, "path"); point.setAttribute("d", "M5 8 L5 13.5");
  svg.append(point, head);
  return svg;
}

function boltIcon() {  // drawn, not an emoji, as the pin is
  const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "sg-bolt"); svg.setAttribute("viewBox", "0 0 10 14"); svg.dataset.testid = "sg-bolt";
  const path = document.createElementNS(ns, "path"); path.setAttribute("d", "M6 0 L1 8 H4.5 L3.5 14 L9 5.5 H5.5 Z");
  svg.appendChild(path);
  return svg;
}

function nodeEl(root, m, n) {
  const s = spec(m, n);
  const el = document.createElement("div");
  el.className = "sg-node"; el.dataset.id = n.id; el.dataset.testid = "sg-node"; el.dataset.agent = n.agent;
  setPos(el, n); el.style.borderTopColor = s.color || "#94a3b8";
  const rows = Math.max(s.inputs.length, s.outputs.length, 1);
  el.style.height = (HEAD_H + SUB_H + rows * PORT_H + PAD_B) + "px";
  if (m.selNodes.has(n.id)) el.classList.add("selected");
  if (m.hiddenIn && m.hiddenIn[n.id]) el.hidden = true;  // inside a folded frame
  // long labels wrap to two lines inside the fixed header; the full text is the tooltip (plain text, never HTML)
  const head = document.createElement("div"); head.className = "sg-head"; head.dataset.label = n.label || n.id;
  const text = document.createElement("span"); text.className = "sg-label"; text.textContent = n.label || n.id;
  if (n.pinned) {  // its output comes from a pinned run (plain text; Python formats it)
    el.classList.add("pinned"); head.dataset.label += `\npinned: runs take its output from ${n.pinned}`;
    head.appendChild(pinIcon());
  }
  if (n.idle) { el.classList.add("idle"); head.dataset.label += "\nnot run: its outputs only feed pinned nodes"; }
  if (n.disabled) { el.classList.add("disabled"); head.dataset.label += "\ndisabled: it and what follows it do not run (Ctrl+M)"; }
  else if (n.muted) { el.classList.add("muted"); head.dataset.label += "\nnot run: a node before it is disabled"; }
  else if (n.bypassed) { el.classList.add("bypassed"); head.dataset.label += "\nbypassed: its input goes straight on (Ctrl+B)"; }
  if (n.breakpoint) {  // runs pause before it (a red dot, as a debugger draws one; a ring: only when its condition holds)
    el.classList.add("breakpoint");
    head.dataset.label += n.breakWhen ? `\nbreakpoint: runs pause before it when some row meets ${n.breakWhen} (F9 removes it)`
      : "\nbreakpoint: runs pause before it starts (F9 removes it)";
    const dot = document.createElement("span"); dot.className = n.breakWhen ? "sg-break if" : "sg-break";
    dot.dataset.testid = "sg-break"; if (n.breakWhen) dot.title = `pauses when ${n.breakWhen}`;
    head.prepend(dot);
  }
  if (n.drill) {  // a fault drill (plain text; Python formats it)
    el.classList.add("drilled"); head.dataset.label += `\nfault drill: it ${n.drill}`;
    head.appendChild(boltIcon());
  }
  if (n.component) {  // stacked: one node that runs the nodes of a component
    el.classList.add("component"); el.dataset.component = n.component;
    head.dataset.label += `\ncomponent ${n.component}: ${n.inner} nodes inside (double-click or ⤢ opens it, Ctrl+Shift+G ungroups it)`;
    const open = document.createElement("button"); open.className = "sg-open"; open.dataset.testid = "sg-open";
    open.textContent = "⤢"; open.title = `Open component ${n.component} to edit what is inside`;
    open.setAttribute("aria-label", `Open component ${n.component}`);
    open.addEventListener("pointerdown", ev => ev.stopPropagation());
    open.addEventListener("click", ev => { ev.stopPropagation(); openComponent(root, m, n.id); });
    el.__open = open;                                 // after the title
    if (n.newer) {  // the library holds another version of its component
      const mark = document.createElement("span"); mark.className = "sg-newer"; mark.dataset.testid = "sg-newer";
      mark.textContent = "↻"; head.appendChild(mark);
      head.dataset.label += "\nthe component library holds another version: its panel offers it";
    }
  }
  if (n.boundary) { el.classList.add("boundary"); head.dataset.label += "\nthe component's ports: it cannot be deleted"; }
  head.title = head.dataset.label;
  if (el.__open) head.appendChild(el.__open);       // before the title: the state badge covers the right end
  head.appendChild(text);
  if (!n.boundary) head.addEventListener("dblclick", ev => { ev.stopPropagation(); renameNode(root, m, n, head, text); });
  if (n.component) el.addEventListener("dblclick", ev => { if (!ev.target.closest(".sg-head, .sg-port")) openComponent(root, m, n.id); });
  const badge = document.createElement("span"); badge.className = "sg-badge"; badge.hidden = true;
  const sub = document.createElement("div"); sub.className = "sg-sub";
  sub.textContent = s.missing ? (n.component ? `no component ${n.component}` : `unknown agent ${n.agent}`)
    : n.boundary ? n.sub : (n.sub ? `${n.id} · ${n.sub}` : n.id);
  sub.title = sub.textContent;
  el.append(head, badge, sub);
  const addPort = (p, i, side) => {
    const pe = document.createElement("div");
    pe.className = `sg-port ${side}`; pe.dataset.port = p.name; pe.dataset.kind = p.kind;
    pe.style.top = (HEAD_H + SUB_H + i * PORT_H) + "px";
    pe.title = `${p.name}: ${p.kind}${p.required === false ? " (optional)" : ""}${p.multiple ? " (many)" : ""}`;
    const dot = document.createElement("i"); dot.style.background = m.kindColors[p.kind] || "#64748b";
    const name = document.createElement("span"); name.textContent = p.name;
    pe.append(dot, name); el.appendChild(pe);
    if (side === "out") dot.addEventListener("pointerdown", ev => connectDrag(root, m, n, p, ev));
  };
  s.inputs.forEach((p, i) => addPort(p, i, "in"));
  s.outputs.forEach((p, i) => addPort(p, i, "out"));
  el.addEventListener("pointerdown", ev => nodeDown(root, m, n, ev));
  return el;
}

// Double-click a node's title to rename it in place (Enter keeps, Escape drops); Python sets the label.
function renameNode(root, m, n, head, text) {
  if (head.querySelector("input")) return;
  const input = document.createElement("input");
  input.className = "sg-rename"; input.dataset.testid = "sg-rename"; input.maxLength = 500;
  input.value = n.label || n.id; input.setAttribute("aria-label", `Label of ${n.id}`);
  text.hidden = true; head.appendChild(input);
  m.gestures++;
  let done = false;
  const finish = keep => {
    if (done) return; done = true;
    const value = input.value.trim().slice(0, 500);
    input.remove(); text.hidden = false; m.gestures--;
    if (keep && value !== (n.label || n.id)) {
      n.label = value || n.id; text.textContent = n.label; head.dataset.label = n.label; head.title = n.label;
      command(m, "label", { id: n.id, label: value });
    }
    adoptPending(root, m); focus(root);
  };
  input.addEventListener("pointerdown", ev => ev.stopPropagation());
  input.addEventListener("keydown", ev => {
    ev.stopPropagation();
    if (ev.key === "Enter") { ev.preventDefault(); finish(true); }
    else if (ev.key === "Escape") { ev.preventDefault(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
  input.focus(); input.select();
}

function portXY(m, id, port, side) {
  const n = m.nodes[id];
  if (!n) return { x: 0, y: 0 };
  const f = m.hiddenIn && m.hiddenIn[id];
  if (f) return { x: f.x + (side === "out" ? (f.w || NOTE_W) : 0), y: f.y + FOLD_H / 2 };  // meets the folded frame
  const s = spec(m, n), list = side === "out" ? s.outputs : s.inputs;
  const i = Math.max(0, list.findIndex(p => p.name === port));
  return { x: n.x + (side === "out" ? NODE_W : 0), y: n.y + BORDER_T + HEAD_H + SUB_H + i * PORT_H + PORT_H / 2 };
}

function curve(a, b) { const dx = Math.max(40, Math.abs(b.x - a.x) / 2); return `M${a.x},${a.y} C${a.x + dx},${a.y} ${b.x - dx},${b.y} ${b.x},${b.y}`; }
function edgeD(m, e) { return curve(portXY(m, e.src, e.srcPort, "out"), portXY(m, e.dst, e.dstPort, "in")); }

// An edge's label (the items planned to flow along it) sits at the middle of its curve, which for
// curve()'s symmetric control points is the middle of its two ends.
function placeLabel(m, e) {
  const t = m.labels[e.id]; if (!t) return;
  const a = portXY(m, e.src, e.srcPort, "out"), b = portXY(m, e.dst, e.dstPort, "in");
  t.setAttribute("x", (a.x + b.x) / 2); t.setAttribute("y", (a.y + b.y) / 2 - 6);
}

// The wires' layer covers the graph (a browser finds what is under the pointer only inside an
// <svg>'s own box, not in what overflows it), in canvas coordinates through its viewBox.
function sizeEdgeLayer(root, m) {
  const ns = Object.values(m.nodes), svg = root.querySelector(".sg-edges");
  if (!ns.length) return;
  const x0 = Math.min(...ns.map(n => n.x)) - 400, y0 = Math.min(...ns.map(n => n.y)) - 400;
  const w = Math.max(...ns.map(n => n.x + NODE_W)) + 400 - x0, h = Math.max(...ns.map(n => n.y + 200)) + 400 - y0;
  Object.assign(svg.style, { left: x0 + "px", top: y0 + "px", width: w + "px", height: h + "px" });
  svg.setAttribute("viewBox", `${x0} ${y0} ${w} ${h}`);
}

function drawEdges(root, m, movedIds) {
  sizeEdgeLayer(root, m);
  if (movedIds) {
    for (const e of m.edges) if (movedIds.has(e.src) || movedIds.has(e.dst)) {
      const d = edgeD(m, e);
      m.paths[e.id]?.setAttribute("d", d); m.hits[e.id]?.setAttribute("d", d); placeLabel(m, e);
    }
    return;
  }
  const svg = root.querySelector(".sg-edges");
  svg.querySelectorAll("path.sg-edge, path.sg-edge-hit, text.sg-edge-label").forEach(p => p.remove());
  m.paths = {}; m.labels = {}; m.hits = {};
  for (const e of m.edges) {
    if (!m.nodes[e.src] || !m.nodes[e.dst]) continue;
    const hs = m.hiddenIn && m.hiddenIn[e.src];
    if (hs && hs === m.hiddenIn[e.dst]) continue;  // both ends folded away in the same frame
    const p = m.paths[e.id] = svgPath(root, "sg-edge" + (m.selEdges.has(e.id) ? " selected" : "") + (e.cut ? " cut" : ""));
    p.dataset.id = e.id; p.setAttribute("d", edgeD(m, e));
    const hit = m.hits[e.id] = svgPath(root, "sg-edge-hit");  // a wide clear stroke: a wire is easy to hit
    hit.dataset.id = e.id; hit.setAttribute("d", p.getAttribute("d"));
    const ran = (m.counted || {})[e.id], label = ran || e.label;  // what a run counted, else the plan
    if (label) {
      const t = m.labels[e.id] = document.createElementNS("http://www.w3.org/2000/svg", "text");
      t.setAttribute("class", "sg-edge-label" + (ran ? " ran" : "")); t.setAttribute("text-anchor", "middle");
      t.dataset.id = e.id; t.textContent = label; svg.appendChild(t); placeLabel(m, e);
    }
    const s = spec(m, m.nodes[e.src]).outputs.find(o => o.name === e.srcPort);
    if (s) p.style.stroke = m.kindColors[s.kind] || "";
    hit.addEventListener("pointerdown", ev => {
      ev.stopPropagation(); focus(root);
      if (ev.shiftKey) toggle(m.selEdges, e.id); else { m.selNodes.clear(); m.selNotes.clear(); m.selEdges = new Set([e.id]); }
      refreshSelection(root, m); emit(m);
    });
  }
}

function svgPath(root, cls) {
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("class", cls); root.querySelector(".sg-edges").appendChild(p); return p;
}

function applyDecorations(root, m) {
  for (const count of root.querySelectorAll(".sg-fold-count")) {  // a folded frame says what it hides
    const f = m.notes[count.closest(".sg-note").dataset.id], inside = Object.keys(m.hiddenIn || {}).filter(id => m.hiddenIn[id] === f);
    const by = {};
    for (const id of inside) { const st = m.status[id]; if (st) by[st] = (by[st] || 0) + 1; }
    const states = Object.entries(by).map(([st, k]) => `${k} ${st}`).join(", ");
    count.textContent = `${inside.length} node${inside.length === 1 ? "" : "s"}` + (states ? ` \u00B7 ${states}` : "");
    const errs = inside.filter(id => (m.issues[id] || []).some(x => x.severity === "error")).length;
    count.classList.toggle("has-error", errs > 0);
    const title = count.closest(".sg-note").querySelector(".sg-note-text");  // the title ends where the count starts
    if (title) title.style.paddingRight = (count.offsetWidth + 30) + "px";
  }
  for (const el of root.querySelectorAll(".sg-node")) {
    const id = el.dataset.id, found = m.issues[id] || [], st = m.status[id] || "";
    if (st) el.dataset.status = st; else delete el.dataset.status;
    const errors = found.filter(f => f.severity === "error").length;
    el.classList.toggle("has-error", errors > 0);
    el.classList.toggle("has-warning", errors === 0 && found.length > 0);
    const badge = el.querySelector(".sg-badge");
    badge.hidden = found.length === 0 && !st;
    badge.textContent = found.length ? (errors ? `${errors} error${errors > 1 ? "s" : ""}` : `${found.length} note${found.length > 1 ? "s" : ""}`) : st;
    badge.title = found.map(f => `${f.severity}: ${f.message}`).join("\n");
    const head = el.querySelector(".sg-head");
    head.title = [head.dataset.label, badge.title].filter(Boolean).join("\n");
    const badPorts = new Set(found.filter(f => f.port).map(f => f.port));
    for (const pe of el.querySelectorAll(".sg-port")) pe.classList.toggle("port-error", badPorts.has(pe.dataset.port));
  }
}

// -- gestures --------------------------------------------------------------------------------

function focus(root) { root.querySelector(".sg-canvas").focus({ preventScroll: true }); }

function nodeDown(root, m, n, ev) {
  if (ev.target.matches(".sg-port i")) return;
  ev.stopPropagation(); focus(root);
  if (ev.shiftKey) { toggle(m.selNodes, n.id); refreshSelection(root, m); emit(m); return; }
  if (!m.selNodes.has(n.id)) { m.selNodes = new Set([n.id]); m.selEdges.clear(); m.selNotes.clear(); refreshSelection(root, m); }
  const moving = [...m.selNodes].map(id => m.nodes[id]).filter(Boolean);
  const start = { x: ev.clientX, y: ev.clientY, pos: moving.map(k => ({ x: k.x, y: k.y })) };
  const ids = new Set(moving.map(k => k.id)); let moved = false, frame = 0;
  const els = moving.map(k => root.querySelector(`.sg-node[data-id="${CSS.escape(k.id)}"]`));
  gesture(root, m, e => {
    moved = true;
    const dx = (e.clientX - start.x) / m.zoom, dy = (e.clientY - start.y) / m.zoom;
    moving.forEach((k, i) => { k.x = Math.round(start.pos[i].x + dx); k.y = Math.round(start.pos[i].y + dy); });
    if (!frame) frame = requestAnimationFrame(() => {
      frame = 0;
      moving.forEach((k, i) => setPos(els[i], k));
      drawEdges(root, m, ids);
    });
  }, () => {
    if (frame) cancelAnimationFrame(frame);
    moving.forEach((k, i) => setPos(els[i], k));
    drawEdges(root, m, ids); drawMinimap(root, m); emit(m);
    void moved;
  });
}

function isBackground(t) {
  return t.classList.contains("sg-canvas") || t.classList.contains("sg-edges") || t.classList.contains("sg-empty") ||
    t.classList.contains("sg-world");
}

function backgroundDown(root, m, ev) {
  if (!isBackground(ev.target)) return;
  focus(root);
  const canvas = root.querySelector(".sg-canvas"), r = canvas.getBoundingClientRect();
  const s = { x: ev.clientX, y: ev.clientY, px: m.pan.x, py: m.pan.y };
  let moved = false;
  if (ev.shiftKey) {                                   // rubber-band selection
    const band = root.querySelector(".sg-band");
    gesture(root, m, e => {
      moved = true;
      Object.assign(band.style, { display: "block", left: Math.min(s.x, e.clientX) - r.left + "px", top: Math.min(s.y, e.clientY) - r.top + "px",
        width: Math.abs(e.clientX - s.x) + "px", height: Math.abs(e.clientY - s.y) + "px" });
    }, e => {
      band.style.display = "none";
      if (!moved) return;
      const a = toWorld(root, m, Math.min(s.x, e.clientX), Math.min(s.y, e.clientY));
      const b = toWorld(root, m, Math.max(s.x, e.clientX), Math.max(s.y, e.clientY));
      const hit = Object.values(m.nodes).filter(n => !(m.hiddenIn || {})[n.id] && n.x + NODE_W >= a.x && n.x <= b.x
        && n.y + HEAD_H >= a.y && n.y <= b.y).map(n => n.id);
      setSelection(root, m, [...new Set([...m.selNodes, ...hit])], [...m.selEdges]); emit(m);
    });
    return;
  }
  gesture(root, m, e => { moved = true; m.pan.x = s.px + e.clientX - s.x; m.pan.y = s.py + e.clientY - s.y; transform(root, m); },
    () => {
      if (moved) return;
      if (m.selNodes.size || m.selEdges.size) { setSelection(root, m, [], []); emit(m); }
      else if (m.selNotes.size) setSelection(root, m, [], []);
    });
}

function connectDrag(root, m, n, port, ev) {
  ev.stopPropagation(); ev.preventDefault(); focus(root);
  const tmp = svgPath(root, "sg-tmp"), a = portXY(m, n.id, port.name, "out");
  gesture(root, m, e => tmp.setAttribute("d", curve(a, toWorld(root, m, e.clientX, e.clientY))), e => {
    tmp.remove();
    const under = root.getRootNode().elementFromPoint(e.clientX, e.clientY);
    const hit = under?.closest?.(".sg-port.in");
    if (!hit) {                                       // dropped on empty canvas: offer the agents that read it
      if (under && root.contains(under) && isBackground(under)) quickAdd(root, m, e.clientX, e.clientY, { node: n.id, port });
      return;
    }
    const dst = hit.closest(".sg-node").dataset.id, dport = hit.dataset.port;
    const target = spec(m, m.nodes[dst]).inputs.find(p => p.name === dport);
    const reason = refusal(m, n.id, port, dst, target);
    if (reason) { flash(hit); toast(root, reason, "error"); return; }
    let note = "";
    if (!target.multiple) {
      const before = m.edges.length;
      m.edges = m.edges.filter(x => !(x.dst === dst && x.dstPort === dport));
      if (m.edges.length < before) note = `replaced the previous connection into ${dst}.${dport}`;
    }
    m.edges.push({ id: `${n.id}.${port.name}->${dst}.${dport}`, src: n.id, srcPort: port.name, dst, dstPort: dport });
    drawEdges(root, m); emit(m);
    if (note) toast(root, note, "info");
  });
}

// Whether an output port's kind can feed an input port at all ("" when it can).
function kindRefusal(src, port, dst, target) {
  if (!(port.kind === target.kind || port.kind === "any" || target.kind === "any"))
    return `${port.kind} → ${target.kind}: incompatible kinds (${src}.${port.name} → ${dst}.${target.name})`;
  if (target.kind === "any" && target.accepts && port.kind !== "any" && !target.accepts.includes(port.kind))
    return `${port.kind} → ${dst}.${target.name}: it reads ${target.accepts.join(", ")}, not ${port.kind}`;
  return "";
}

function refusal(m, src, port, dst, target) {
  if (!target) return "unknown input port";
  if (dst === src) return `refused: ${src} cannot feed itself`;
  const kinds = kindRefusal(src, port, dst, target);
  if (kinds) return kinds;
  if (m.edges.some(e => e.src === src && e.srcPort === port.name && e.dst === dst && e.dstPort === target.name))
    return `${src}.${port.name} → ${dst}.${target.name} is already connected`;
  if (reaches(m, dst, src)) return `refused: ${src} → ${dst} would create a cycle`;
  return "";
}

function reaches(m, from, to) {
  const seen = new Set(), stack = [from];
  while (stack.length) {
    const v = stack.pop(); if (v === to) return true; if (seen.has(v)) continue; seen.add(v);
    for (const e of m.edges) if (e.src === v) stack.push(e.dst);
  }
  return false;
}

// -- quick add: a searchable list of agents at a point (double-click the background, or drop a
// wire there: then only the agents with an input that reads it, and the new node comes wired) --

function quickAdd(root, m, clientX, clientY, from) {
  const at = toWorld(root, m, clientX, clientY);
  const agents = Object.values(m.palette).filter(a => !a.hidden && (!from || a.inputs.some(p => !kindRefusal(from.node, from.port, a.name, p))));
  if (!agents.length) { toast(root, `no agent reads ${from.port.kind}`, "info"); return; }
  openSearch(root, m, clientX, clientY, from ? `Agents that read ${from.port.kind}` : "Add an agent here",
    agents.map(a => ({ key: a.name, title: a.label || a.name, hint: a.category, tip: a.description || a.name,
      search: `${a.name} ${a.label} ${a.category}`.toLowerCase(), color: a.color, data: { agent: a.name } })),
    item => place(root, m, m.palette[item.key], at, from), "no agent matches");
}

// The search box of quick add and find: type to filter, ↑/↓, Enter picks, Escape or a click
// elsewhere closes it. Every text is set with textContent.
function openSearch(root, m, clientX, clientY, placeholder, items, onPick, none = "nothing matches") {
  closeQuick(root, m);
  const canvas = root.querySelector(".sg-canvas"), r = canvas.getBoundingClientRect();
  const box = document.createElement("div");
  box.className = "sg-quick"; box.dataset.testid = "sg-quick";
  box.style.left = Math.max(0, Math.min(clientX - r.left, r.width - 270)) + "px";
  box.style.top = Math.max(0, Math.min(clientY - r.top, r.height - 250)) + "px";
  const input = document.createElement("input");
  input.type = "search"; input.className = "sg-quick-search"; input.dataset.testid = "sg-quick-search";
  input.placeholder = placeholder; input.setAttribute("aria-label", placeholder);
  const list = document.createElement("div"); list.className = "sg-quick-list"; list.setAttribute("role", "listbox");
  box.append(input, list); canvas.appendChild(box);
  m.gestures++; m.quickBox = box;                   // a push from Python waits until it closes
  let shown = [], active = 0;
  const pick = item => { closeQuick(root, m); onPick(item); };
  const draw = () => {
    const q = input.value.trim().toLowerCase();
    shown = items.filter(item => !q || item.search.includes(q)).slice(0, 60);
    active = Math.min(active, Math.max(0, shown.length - 1));
    list.textContent = "";
    shown.forEach((item, i) => {
      const it = document.createElement("div");
      it.className = "sg-quick-item" + (i === active ? " active" : ""); Object.assign(it.dataset, item.data || {});
      it.dataset.testid = "sg-quick-item"; it.setAttribute("role", "option"); it.title = item.tip || item.title;
      it.style.borderLeftColor = item.color || "#94a3b8";
      const name = document.createElement("span"); name.textContent = item.title;
      const hint = document.createElement("small"); hint.textContent = item.hint || "";
      it.append(name, hint);
      it.addEventListener("pointerdown", ev => { ev.preventDefault(); ev.stopPropagation(); pick(item); });
      list.appendChild(it);
    });
    if (!shown.length) {
      const empty = document.createElement("div"); empty.className = "sg-quick-none"; empty.textContent = none;
      list.appendChild(empty);
    }
    list.children[active]?.scrollIntoView?.({ block: "nearest" });
  };
  input.addEventListener("input", () => { active = 0; draw(); });
  input.addEventListener("keydown", ev => {
    ev.stopPropagation();
    if (ev.key === "Escape") { ev.preventDefault(); closeQuick(root, m); focus(root); }
    else if (ev.key === "ArrowDown") { ev.preventDefault(); active = Math.min(active + 1, shown.length - 1); draw(); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); active = Math.max(active - 1, 0); draw(); }
    else if (ev.key === "Enter" && shown[active]) { ev.preventDefault(); pick(shown[active]); }
  });
  input.addEventListener("blur", () => { if (m.quickBox === box) closeQuick(root, m); });
  box.addEventListener("pointerdown", ev => { ev.stopPropagation(); if (ev.target !== input) ev.preventDefault(); });
  box.addEventListener("dblclick", ev => ev.stopPropagation());
  draw(); input.focus();
}

// Find a node: the same search box, over the graph's nodes (id, label, agent); the one picked is
// selected and brought to the middle of the view.
function findNode(root, m) {
  const nodes = Object.values(m.nodes);
  if (!nodes.length) { toast(root, "no node to find: the canvas is empty", "info"); return; }
  const r = root.querySelector(".sg-canvas").getBoundingClientRect();
  openSearch(root, m, r.left + r.width / 2 - 130, r.top + 12, "Find a node (id, label, agent)",
    nodes.map(n => ({ key: n.id, title: n.label || n.id, hint: n.label && n.label !== n.id ? n.id : n.agent,
      search: `${n.id} ${n.label || ""} ${n.agent}`.toLowerCase(), color: spec(m, n).color, data: { node: n.id } })),
    item => {
      const n = m.nodes[item.key];
      if (!n) return;
      setSelection(root, m, [n.id], []);
      m.pan = { x: r.width / 2 - (n.x + NODE_W / 2) * m.zoom, y: r.height / 2 - (n.y + 40) * m.zoom };
      transform(root, m); emit(m);
    }, "no node matches");
}

function closeQuick(root, m) {
  const box = m.quickBox;
  if (!box) return;
  m.quickBox = null; m.gestures--;                   // first: removing the focused search fires its blur
  box.remove();
  adoptPending(root, m);
}

// A picked agent becomes a node at the point; from a dropped wire, wired into its first input that takes it.
function place(root, m, agent, at, from) {
  const id = freshId(m, agent.name);
  m.nodes[id] = { id, agent: agent.name, label: agent.label || agent.name,
    x: Math.round(from ? at.x : at.x - NODE_W / 2), y: Math.round(at.y - HEAD_H / 2) };
  if (from && m.nodes[from.node]) {
    const target = agent.inputs.find(p => !refusal(m, from.node, from.port, id, p));
    if (target) m.edges.push({ id: `${from.node}.${from.port.name}->${id}.${target.name}`, src: from.node,
      srcPort: from.port.name, dst: id, dstPort: target.name });
  }
  renderAll(root, m);
  setSelection(root, m, [id], []);
  emit(m);
}

function deleteSelection(root, m) {
  if (!m.selNodes.size && !m.selEdges.size && !m.selNotes.size) return;
  const kept = [...m.selNodes].filter(id => m.nodes[id] && m.nodes[id].boundary);
  if (kept.length && m.selNodes.size === kept.length && !m.selEdges.size && !m.selNotes.size) {
    toast(root, "a component's Inputs and Outputs stay: delete a wire to remove a port", "info"); return;
  }
  for (const id of m.selNodes) if (!kept.includes(id)) delete m.nodes[id];
  for (const id of m.selNotes) delete m.notes[id];
  m.selNotes = new Set();
  m.edges = m.edges.filter(e => !m.selEdges.has(e.id) && m.nodes[e.src] && m.nodes[e.dst]);
  m.selNodes = new Set(); m.selEdges = new Set();
  renderAll(root, m); emit(m);
}

// -- selection, view, helpers ----------------------------------------------------------------

function toggle(set, id) { if (set.has(id)) set.delete(id); else set.add(id); }
function setSelection(root, m, nodes, edges) { m.selNodes = new Set(nodes); m.selEdges = new Set(edges); m.selNotes = new Set(); refreshSelection(root, m); }
function refreshSelection(root, m) {
  root.querySelectorAll(".sg-node").forEach(el => el.classList.toggle("selected", m.selNodes.has(el.dataset.id)));
  root.querySelectorAll("path.sg-edge").forEach(p => p.classList.toggle("selected", m.selEdges.has(p.dataset.id)));
  root.querySelectorAll(".sg-note").forEach(el => el.classList.toggle("selected", m.selNotes.has(el.dataset.id)));
}

function toWorld(root, m, cx, cy) {
  const r = root.querySelector(".sg-canvas").getBoundingClientRect();
  return { x: (cx - r.left - m.pan.x) / m.zoom, y: (cy - r.top - m.pan.y) / m.zoom };
}
function transform(root, m) {
  root.querySelector(".sg-world").style.transform = `translate(${m.pan.x}px,${m.pan.y}px) scale(${m.zoom})`;
  if (!m.mapFrame) m.mapFrame = requestAnimationFrame(() => { m.mapFrame = 0; drawMinimap(root, m); });  // once a frame
}

// -- the overview: shown when part of the graph is out of view; click or drag it to move there --

const MAP_W = 168, MAP_H = 108;
function drawMinimap(root, m) {
  const map = root.querySelector(".sg-minimap"), r = root.querySelector(".sg-canvas").getBoundingClientRect();
  const boxes = [...Object.values(m.nodes).map(n => [n.x, n.y, NODE_W, 60, "node"]),
    ...Object.values(m.notes).map(n => [n.x, n.y, n.w || NOTE_W, n.h || 60, "note"])];
  if (!map || !boxes.length || !r.width) { map?.toggleAttribute("hidden", true); return; }
  const view = [-m.pan.x / m.zoom, -m.pan.y / m.zoom, r.width / m.zoom, r.height / m.zoom];
  const inView = boxes.every(([x, y, w, h]) => x >= view[0] && y >= view[1] && x + w <= view[0] + view[2] && y + h <= view[1] + view[3]);
  map.toggleAttribute("hidden", inView);  // an <svg> has no .hidden property: the attribute itself
  if (inView) return;
  const x0 = Math.min(view[0], ...boxes.map(b => b[0])), y0 = Math.min(view[1], ...boxes.map(b => b[1]));
  const x1 = Math.max(view[0] + view[2], ...boxes.map(b => b[0] + b[2])), y1 = Math.max(view[1] + view[3], ...boxes.map(b => b[1] + b[3]));
  const k = Math.min((MAP_W - 8) / (x1 - x0), (MAP_H - 8) / (y1 - y0));
  map.__map = { x0, y0, k };
  map.setAttribute("width", MAP_W); map.setAttribute("height", MAP_H);
  map.textContent = "";
  const rect = (x, y, w, h, cls) => {
    const e = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    e.setAttribute("x", 4 + (x - x0) * k); e.setAttribute("y", 4 + (y - y0) * k);
    e.setAttribute("width", Math.max(1, w * k)); e.setAttribute("height", Math.max(1, h * k)); e.setAttribute("class", cls);
    map.appendChild(e);
  };
  for (const [x, y, w, h, kind] of boxes) rect(x, y, w, h, `sg-map-${kind}`);
  rect(...view, "sg-map-view");
  if (!map.__wired) {
    map.__wired = true;
    const centre = e => {
      const b = map.getBoundingClientRect(), g = map.__map;
      const wx = g.x0 + (e.clientX - b.left - 4) / g.k, wy = g.y0 + (e.clientY - b.top - 4) / g.k;
      const c = root.querySelector(".sg-canvas").getBoundingClientRect();
      m.pan = { x: c.width / 2 - wx * m.zoom, y: c.height / 2 - wy * m.zoom };
      // not transform(): redrawing the overview mid-drag would rescale it under the pointer
      root.querySelector(".sg-world").style.transform = `translate(${m.pan.x}px,${m.pan.y}px) scale(${m.zoom})`;
    };
    map.addEventListener("pointerdown", ev => {
      ev.stopPropagation(); ev.preventDefault(); centre(ev);
      gesture(root, m, centre, () => drawMinimap(root, m));
    });
  }
}
function zoomAt(root, m, k, cx, cy) {
  const z = Math.min(3, Math.max(0.15, m.zoom * k)); k = z / m.zoom;
  m.pan.x = cx - (cx - m.pan.x) * k; m.pan.y = cy - (cy - m.pan.y) * k; m.zoom = z; transform(root, m);
}
function fitView(root, m) {
  const ns = [...Object.values(m.nodes).map(n => ({ x: n.x, y: n.y, w: NODE_W })),
    ...Object.values(m.notes).map(n => ({ x: n.x, y: n.y, w: n.w || NOTE_W, h: n.h || 90 }))];
  const r = root.querySelector(".sg-canvas").getBoundingClientRect();
  if (!ns.length || !r.width) { m.pan = { x: 20, y: 20 }; m.zoom = 1; transform(root, m); return; }
  const x0 = Math.min(...ns.map(n => n.x)), y0 = Math.min(...ns.map(n => n.y));
  const x1 = Math.max(...ns.map(n => n.x + n.w)), y1 = Math.max(...ns.map(n => n.y + (n.h || 90)));
  const z = Math.min(1.2, Math.max(0.15, Math.min((r.width - 40) / (x1 - x0), (r.height - 40) / (y1 - y0))));
  m.zoom = z; m.pan = { x: (r.width - (x1 - x0) * z) / 2 - x0 * z, y: (r.height - (y1 - y0) * z) / 2 - y0 * z };
  transform(root, m);
}
function flash(el) { el.classList.add("refused"); setTimeout(() => el.classList.remove("refused"), 900); }
function toast(root, text, kind) {
  const box = root.querySelector(".sg-toasts"), t = document.createElement("div");
  t.className = `sg-toast ${kind}`; t.dataset.testid = "sg-toast"; t.textContent = text;
  box.appendChild(t); setTimeout(() => t.remove(), 5000);
}
// A pointer gesture (drag, band, connect, pan): a push from Python waits until it ends, so the
// gesture's report is made on the graph the user saw (Python replays it onto its newer revision).
function gesture(root, m, move, up) {
  m.gestures++;
  track(move, e => {
    try { if (up) up(e); } finally { m.gestures--; adoptPending(root, m); }
  });
}
function track(move, up) {                           // a cancelled pointer ends the gesture too
  const mv = e => move(e), u = e => {
    window.removeEventListener("pointermove", mv); window.removeEventListener("pointerup", u); window.removeEventListener("pointercancel", u);
    up && up(e);
  };
  window.addEventListener("pointermove", mv); window.addEventListener("pointerup", u); window.addEventListener("pointercancel", u);
}
// Each report carries this canvas's sid and a sequence number; Python acknowledges the last one
// it took (data.ack). Until then the canvas adopts no newer graph from Python: Streamlit hands the
// script only the latest value of a burst of reports, so the latest must hold every local action
// since the rev it is based on, and adopting a push in between (Python's graph before the next
// report) would drop the actions made since. A push withheld for over 15 s is adopted anyway
// (a report Python never took; a cold server can take seconds per rerun).
function awaiting(m) {
  if (m.acked >= m.seq) return false;
  if (!m.waitSince) m.waitSince = Date.now();
  return Date.now() - m.waitSince < 15000;
}
function emit(m) {
  m.waitSince = 0;
  m.seq = Math.max(m.seq, loadOutbox()?.seq || 0) + 1;
  const report = {
    sid: m.sid, seq: m.seq,
    rev: m.rev, selected: [...m.selNodes], selectedEdges: [...m.selEdges],
    nodes: Object.values(m.nodes).map(({ id, agent, label, x, y }) => ({ id, agent, label, x, y })),
    edges: m.edges.map(({ id, src, srcPort, dst, dstPort }) => ({ id, src, srcPort, dst, dstPort })),
    notes: Object.values(m.notes).map(({ id, text, x, y, w, h, color, folded }) => ({ id, text, x, y, w, h: h || null,
      color: color || "yellow", folded: !!(folded && h) })),
  };
  saveOutbox({ sid: m.sid, seq: m.seq, doc: m.doc, time: Date.now(), report });
  m.api.setStateValue("graph", report);
}
// The last report also lives in sessionStorage (this tab only): Streamlit sometimes remounts the
// component (the page's full rerun after a workflow's first save), and a new canvas would start
// from Python's graph, without the actions Python had not taken yet, or lose a drop whose gesture
// ended on the old canvas. A new canvas of the same tab and workflow (data.doc) whose last report
// is younger than 30 s and not acknowledged takes it up: its graph and base rev, sent again.
const OUTBOX = "servicegrid-canvas-outbox";
function loadOutbox() { try { return JSON.parse(sessionStorage.getItem(OUTBOX) || "null"); } catch (e) { return null; } }
function saveOutbox(v) { try { sessionStorage.setItem(OUTBOX, JSON.stringify(v)); } catch (e) { /* storage off: no resume */ } }
function resume(root, m, data) {
  const s = loadOutbox();
  if (!s || s.sid !== m.sid || !s.report || s.doc !== m.doc || Date.now() - (s.time || 0) > 30000) return;
  if (s.seq <= m.acked || (s.report.rev ?? 0) > (data.rev ?? 0)) return;
  takeUp(root, m, s);
  emit(m);
}
function takeUp(root, m, s) {
  const r = s.report;
  m.rev = r.rev ?? 0; m.seq = Math.max(m.seq, s.seq);
  setGraph(m, r);
  renderAll(root, m);
  applyDecorations(root, m);
}
