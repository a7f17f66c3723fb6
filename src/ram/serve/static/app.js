// The page of `ram serve`: plain DOM, no build step, nothing fetched from anywhere but this server.
//
// Classify: the drawing (or a dropped file) is POSTed as it is to /api/classify; the answer is one episode, which is
// animated here glimpse by glimpse. Every glimpse is an SVG <g class="glimpse"> carrying its centre in the model's
// pixels (data-x, data-y), its squares (data-boxes) and the label it leads to (data-output), so what is drawn can be
// checked against model.predict. A model of several digits (DRAM on mnist-pairs, mnist-numbers) gets one drawing box
// per digit, sent side by side as one image (a number may leave its last boxes blank) and cut into the boxes' equal
// columns, where a dropped file is cut at the blank columns between its digits (layout=gaps); its glimpses are
// coloured by the label they lead to, in `ram viz`'s colours, and those that lead past a string's end are grey.
// Catch: /api/catch/game gives a whole seeded game to animate; a person plays the same game, one /api/catch/step
// per tick, seeing only the glimpse window around the pointer.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const STEP_MS = 600; // per glimpse when a classification is animated
const UNREAD = "#777"; // the glimpses that lead to labels past a string's end
const MOST_BARS = 12; // a model of more classes (55 pairs) shows its 10 likeliest
const GAME_MS = 160; // per move when the agent plays

const page = { models: [], byName: {}, catchModel: "catch" }; // catchModel: the agent the Catch tab shows

async function api(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch {
    body = { error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

const mode = () => document.querySelector('input[name="mode"]:checked').value;
const seed = () => Math.max(0, Math.floor(Number($("seed").value) || 0));
const percent = (p) => `${(100 * p).toFixed(1)}%`;

function svg(tag, attributes, parent) {
  const element = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (parent) parent.appendChild(element);
  return element;
}

// ---- tabs -----------------------------------------------------------------------------------------------------------

function showTab(name) {
  for (const tab of ["classify", "catch"]) {
    $(tab).hidden = tab !== name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
  }
  if (name === "catch") catchGame.showAgent();
}

// ---- classify -------------------------------------------------------------------------------------------------------

const classify = {
  source: null, // the Blob last drawn or dropped; sent again when the model, mode or seed changes
  layout: "boxes", // how the server cuts it into digits: the drawing boxes' equal columns, or a file's gaps
  result: null,
  step: 0,
  timer: null,
  request: 0, // answers to older requests are dropped

  async run() {
    if (!this.source) return;
    const request = ++this.request;
    const params = new URLSearchParams({ model: $("model").value, mode: mode(), seed: seed(), layout: this.layout });
    $("view").dataset.state = "waiting";
    try {
      const result = await api(`/api/classify?${params}`, {
        // The server reads the format from the bytes; a file's own type (text/plain for a .txt) could be refused.
        method: "POST", body: this.source, headers: { "Content-Type": "application/octet-stream" },
      });
      if (request !== this.request) return;
      showError("");
      this.show(result);
    } catch (error) {
      if (request !== this.request) return;
      this.clear();
      showError(error.message);
    }
  },

  // Nothing to ask with: no drawing, or one not finished.
  forget() {
    this.source = null;
    this.request++;
    this.clear();
  },

  clear() {
    clearInterval(this.timer);
    this.result = null;
    $("overlay").replaceChildren();
    $("input").removeAttribute("src");
    $("patches").replaceChildren();
    $("bars").replaceChildren();
    $("answers").replaceChildren();
    $("verdict").textContent = "";
    $("prepared").textContent = emptyView();
    $("step-label").textContent = "";
    $("step").disabled = $("replay").disabled = true;
    for (const key of ["state", "label", "model"]) delete $("view").dataset[key];
  },

  show(result) {
    this.clear();
    this.result = result;
    const n = result.image_size;
    $("input").src = result.image;
    const overlay = $("overlay");
    overlay.setAttribute("viewBox", `0 0 ${n} ${n}`);
    svg("polyline", { id: "path", points: "" }, overlay);
    const several = this.several(); // colour each glimpse by the label it leads to
    result.steps.forEach((step, t) => {
      const g = svg("g", {
        class: "glimpse", "data-step": t, "data-x": step.x, "data-y": step.y, "data-boxes": JSON.stringify(step.boxes),
        "data-output": step.output,
      }, overlay);
      if (several) g.style.setProperty("--glimpse", this.colour(step.output));
      // coarsest first, so the finest square is drawn on top
      for (let k = step.boxes.length - 1; k >= 0; k--) {
        const [x0, y0, side] = step.boxes[k];
        svg("rect", { class: `scale-${k}`, x: x0, y: y0, width: side, height: side }, g);
      }
      svg("circle", { cx: step.x, cy: step.y, r: n / 70 }, g);
      // in the image's pixels, as everything in the SVG: about 13 screen pixels whatever the image's size
      const label = svg("text", { x: step.x + n / 50, y: step.y - n / 50, "font-size": n / 22 }, g);
      label.textContent = t + 1;
    });
    const slider = $("step");
    slider.max = result.steps.length - 1;
    slider.disabled = $("replay").disabled = false;
    $("prepared").textContent = {
      "as is": `your image, as it is (${n}x${n})`,
      digit: `your digit, made ${n > 28 ? "MNIST-like and placed (seed " + result.seed + ")" : "MNIST-like"}`,
      digits: `your ${result.digits} digits, each made MNIST-like, placed as its test images are (seed ${result.seed})`,
    }[result.prepared];
    // the emitted labels, each shown once the glimpses leading to it are done
    $("answers").replaceChildren(...(several ? result.labels.map((answer, k) => {
      const chip = document.createElement("span");
      chip.className = "answer";
      chip.dataset.output = k;
      chip.style.setProperty("--glimpse", result.colours[k]);
      chip.textContent = `${this.name(answer.label)} ${percent(answer.probability)}`;
      chip.title = `label ${k + 1} of ${result.labels.length}`;
      return chip;
    }) : []));
    const said = result.labels.map((answer) => answer.label).join(" ");
    Object.assign($("view").dataset, { state: "playing", label: said, model: result.model });
    this.play();
  },

  // The model emits several labels in turn (its glimpses lead to more than one).
  several() {
    return this.result.steps.some((step) => step.output > 0);
  },

  // The colour of the glimpses leading to label k: grey past a string's end, where no label is read.
  colour(k) {
    return k < this.result.labels.length ? this.result.colours[k] : UNREAD;
  },

  // A class's name as the page says it: the end of a string is "end".
  name(label) {
    return label === this.result.end ? "end" : this.result.classes[label];
  },

  // Whether glimpse t emits a label: it is the last glimpse leading to that label.
  emits(t) {
    const steps = this.result.steps;
    return t === steps.length - 1 || steps[t + 1].output !== steps[t].output;
  },

  play() {
    clearInterval(this.timer);
    this.draw(0);
    this.timer = setInterval(() => {
      if (this.step + 1 >= this.result.steps.length) {
        clearInterval(this.timer);
        $("view").dataset.state = "done";
      } else {
        this.draw(this.step + 1);
      }
    }, STEP_MS);
  },

  draw(t) {
    const result = this.result;
    const steps = result.steps;
    this.step = t;
    $("step").value = t;
    $("step-label").textContent = `glimpse ${t + 1} of ${steps.length}`;
    for (const g of $("overlay").querySelectorAll(".glimpse")) {
      const s = Number(g.dataset.step);
      g.classList.toggle("past", s < t);
      g.classList.toggle("current", s === t);
      g.classList.toggle("future", s > t);
    }
    $("path").setAttribute("points", steps.slice(0, t + 1).map((s) => `${s.x},${s.y}`).join(" "));

    const patches = steps[t].patches.map((src, k) => {
      const side = steps[t].boxes[k][2];
      const figure = document.createElement("figure");
      const image = document.createElement("img");
      image.src = src;
      image.alt = `scale ${k + 1}`;
      const caption = document.createElement("figcaption");
      caption.textContent = k === 0 ? `${side}x${side} px` : `${side}x${side} px, shrunk`;
      figure.append(image, caption);
      return figure;
    });
    $("patches").replaceChildren(...patches);

    const last = t === steps.length - 1;
    const output = steps[t].output;
    const several = this.several();
    const answer = result.labels[output]; // none past a string's end
    // after the glimpse that emits a label, that label's probabilities as the answer gives them
    const probs = this.emits(t) && answer ? answer.probs : steps[t].probs;
    const top = probs.indexOf(Math.max(...probs));
    for (const chip of $("answers").children) {
      const k = Number(chip.dataset.output);
      chip.hidden = !steps.slice(0, t + 1).some((s, i) => s.output === k && this.emits(i));
    }
    for (const id of ["patches", "bars"]) { // in the colour of the label this glimpse leads to
      if (several) $(id).style.setProperty("--glimpse", this.colour(output));
      else $(id).style.removeProperty("--glimpse");
    }
    const rows = [];
    const shown = probs.map((p, k) => k);
    if (probs.length > MOST_BARS) shown.sort((a, b) => probs[b] - probs[a]).splice(10);
    shown.forEach((k) => {
      const p = probs[k];
      const name = document.createElement("span");
      name.textContent = this.name(k);
      const track = document.createElement("div");
      track.className = "track";
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = `${100 * p}%`;
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = percent(p);
      for (const cell of [name, track, value]) if (k === top) cell.classList.add("top");
      rows.push(name, track, value);
    });
    $("bars").replaceChildren(...rows);
    const names = result.labels.map((answer) => this.name(answer.label));
    const chances = result.labels.map((answer) => percent(answer.probability));
    const label = several ? `label ${output + 1}: ` : "";
    $("verdict").textContent = last
      ? this.said() + (result.mode === "sampled" ? ", from one sampled episode" : "")
      : !answer
        ? `after ${t + 1} glimpses: past the end of the string, not read`
        : several && this.emits(t)
          ? `${label}${names[output]} (${chances[output]})`
          : `after ${t + 1} glimpse${t ? "s" : ""}: ${label}${this.name(top)}?`;
  },

  // The whole answer in words: a string up to its end, else the labels in turn.
  said() {
    const result = this.result;
    const chances = result.labels.map((answer) => percent(answer.probability));
    if (result.end === null) {
      return `It says ${result.labels.map((answer) => this.name(answer.label)).join(" then ")} (${chances.join(", ")})`;
    }
    const ended = result.labels[result.labels.length - 1].label === result.end;
    const digits = ended ? chances.slice(0, -1) : chances;
    return `It reads ${result.class || "no digit"}` + (digits.length ? ` (${digits.join(", ")})` : "") +
      (ended ? `, then the end (${chances[chances.length - 1]})` : `, and no end in its ${chances.length} labels`);
  },
};

// What the empty view says: how to ask the chosen model (one drawing box per digit it reads).
function emptyView() {
  const n = pads.list.length;
  return (n === 1 ? "Draw a digit on the pad, or drop an image on it" :
    pads.fewest < n ? `Write a number of ${pads.fewest} to ${n} digits, one a box from the left (leave the boxes ` +
      "after it blank), or drop an image of it" :
    `Draw a digit in each of the ${n} boxes, or drop an image of ${n} digits side by side`) +
    ": the model's glimpses appear here, one step at a time, with what each one read and what the model thinks " +
    "after it.";
}

// The drawing boxes: one per digit the chosen model reads (`drawings`), #pad the first. A box is wiped by the first
// stroke after a hint or a dropped file; the drawing is sent once the first `fewest` boxes have ink and no blank box
// comes before an inked one, the boxes side by side in one PNG, which the server cuts back into as many columns.
const pads = {
  list: [], // {canvas, ctx, inked}
  fewest: 1, // the boxes that must be drawn in; a number may leave those after it blank

  add() {
    const canvas = this.list.length ? $("pad").cloneNode() : $("pad");
    const k = this.list.length;
    if (k) {
      canvas.id = `pad-${k + 1}`;
      canvas.setAttribute("aria-label", `drawing box ${k + 1}: draw digit ${k + 1}`);
      $("pads").appendChild(canvas);
    }
    const pad = { canvas, ctx: canvas.getContext("2d"), inked: false };
    this.list.push(pad);
    let last = null;
    const point = (event) => {
      const box = canvas.getBoundingClientRect();
      return [(event.clientX - box.left) * (canvas.width / box.width),
        (event.clientY - box.top) * (canvas.height / box.height)];
    };
    const line = (from, to) => {
      const ctx = pad.ctx;
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 20;
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.beginPath();
      ctx.moveTo(...from);
      ctx.lineTo(...to);
      ctx.stroke();
    };
    canvas.addEventListener("pointerdown", (event) => {
      canvas.setPointerCapture(event.pointerId);
      if (!pad.inked) this.blank(pad); // a hint, or a dropped file's turn
      pad.inked = true;
      last = point(event);
      line(last, last);
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!last) return;
      const next = point(event);
      line(last, next);
      last = next;
    });
    const end = () => {
      if (!last) return;
      last = null;
      this.send();
    };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    canvas.addEventListener("dragover", (event) => {
      event.preventDefault();
      canvas.classList.add("drop");
    });
    canvas.addEventListener("dragleave", () => canvas.classList.remove("drop"));
    canvas.addEventListener("drop", (event) => {
      event.preventDefault();
      canvas.classList.remove("drop");
      this.useFile(event.dataTransfer.files[0]);
    });
    this.hint(pad);
  },

  blank(pad) {
    pad.ctx.fillStyle = "#000";
    pad.ctx.fillRect(0, 0, pad.canvas.width, pad.canvas.height);
    pad.inked = false;
  },

  hint(pad) {
    this.blank(pad);
    const ctx = pad.ctx;
    ctx.fillStyle = "#777";
    // 18 pixels as shown, whatever the box's size on screen
    const zoom = pad.canvas.width / (pad.canvas.getBoundingClientRect().width || pad.canvas.width);
    ctx.font = `${Math.round(18 * zoom)}px sans-serif`;
    ctx.textAlign = "center";
    const k = this.list.indexOf(pad);
    const [x, y] = [pad.canvas.width / 2, pad.canvas.height / 2];
    if (this.list.length === 1) ctx.fillText("draw a digit here", x, y);
    else if (this.list.length === 2) ctx.fillText(`draw digit ${k + 1} here`, x, y);
    else {
      ctx.fillText(`digit ${k + 1}`, x, y);
      if (k >= this.fewest) ctx.fillText("or blank", x, y + 24 * zoom);
    }
  },

  // n boxes, of which the first `fewest` must be drawn in; all hinted anew when either changes.
  show(n, fewest) {
    n = Math.max(1, n);
    fewest = Math.min(n, Math.max(1, fewest || n));
    if (n === this.list.length && fewest === this.fewest) return;
    this.fewest = fewest;
    while (this.list.length > n) this.list.pop().canvas.remove();
    while (this.list.length < n) this.add();
    $("pads").classList.toggle("several", n > 1);
    $("pads").classList.toggle("many", n > 2);
    $("pad-title").textContent = n === 1 ? "Draw a digit" : fewest < n
      ? `Write a number of ${fewest} to ${n} digits` : `Draw ${n} digits, one in each box`;
    for (const pad of this.list) this.hint(pad);
    classify.forget();
  },

  // Every box's ink, side by side, as one PNG; the model is asked once the first `fewest` boxes have some and no
  // blank box comes before an inked one (the server refuses such a gap too).
  send() {
    const drawn = this.list.map((pad) => pad.inked);
    const waiting = drawn.indexOf(false);
    const last = drawn.lastIndexOf(true) + 1; // boxes up to the last one drawn in
    if (waiting >= 0 && waiting < Math.max(last, this.fewest)) {
      classify.forget();
      $("prepared").textContent = waiting < last
        ? `box ${waiting + 1} is blank: write the number from the left, one digit a box, with no blank box between`
        : `now draw digit ${waiting + 1} in box ${waiting + 1}`;
      return;
    }
    let canvas = this.list[0].canvas;
    if (this.list.length > 1) {
      const { width, height } = canvas;
      canvas = document.createElement("canvas");
      canvas.width = width * this.list.length;
      canvas.height = height;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#000"; // opaque: transparent pixels would be read as ink where they are opaque
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      // a blank box's hint is no digit
      this.list.forEach((pad, k) => pad.inked && ctx.drawImage(pad.canvas, k * width, 0));
    }
    canvas.toBlob((blob) => {
      classify.source = blob;
      classify.layout = "boxes";
      classify.run();
    }, "image/png");
  },

  useFile(file) {
    if (!file) return;
    for (const pad of this.list) this.blank(pad);
    classify.source = file;
    classify.layout = "gaps";
    classify.run();
  },
};

function setupPad() {
  pads.add();
  $("prepared").textContent = emptyView();
  $("clear").addEventListener("click", () => {
    for (const pad of pads.list) pads.hint(pad);
    classify.forget();
    showError("");
  });
  $("file").addEventListener("change", (event) => pads.useFile(event.target.files[0]));
}

function chooseModel() {
  const model = page.byName[$("model").value];
  pads.show(model.drawings, model.fewest);
  $("about").textContent = model.about + (model.test_error != null ? `; ${model.test_error}% test error` : "");
  $("clutter").hidden = model.canvas <= 28;
  $("clutter").textContent = model.pieces ? "new clutter" : "new place";
  classify.run();
}

// ---- catch ----------------------------------------------------------------------------------------------------------

// Draw a game's frame ([H][W] of 0/1) on a canvas, whole or as the sensor reads it around the pixel point (u, v):
// scale k is the square of side patch * 2^k at the sensor's centre pixel, read in blocks of 2^k pixels pooled to one
// (max for the shipped Catch agent), and what no square covers is not seen. The geometry is ram.sensor's.
function drawFrame(canvas, frame, { glimpse = null, boxes = null, onlySeen = false } = {}) {
  const ctx = canvas.getContext("2d");
  const size = frame.length;
  const zoom = canvas.width / size;
  ctx.fillStyle = onlySeen ? "#1b2233" : "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!onlySeen) {
    ctx.fillStyle = "#fff";
    frame.forEach((row, y) => row.forEach((lit, x) => lit && ctx.fillRect(x * zoom, y * zoom, zoom, zoom)));
  } else if (glimpse) {
    const { u, v, patch, scales, pool } = glimpse;
    const cx = Math.floor(u + 0.5);
    const cy = Math.floor(v + 0.5);
    const pixel = (x, y) => (x >= 0 && y >= 0 && x < size && y < size ? frame[y][x] : 0);
    for (let k = scales - 1; k >= 0; k--) {
      const block = 2 ** k;
      const x0 = cx - Math.floor((patch * block) / 2);
      const y0 = cy - Math.floor((patch * block) / 2);
      for (let i = 0; i < patch; i++) {
        for (let j = 0; j < patch; j++) {
          let value = 0;
          for (let dy = 0; dy < block; dy++) {
            for (let dx = 0; dx < block; dx++) {
              const p = pixel(x0 + j * block + dx, y0 + i * block + dy);
              value = pool === "max" ? Math.max(value, p) : value + p / (block * block);
            }
          }
          const grey = Math.round(255 * value);
          ctx.fillStyle = `rgb(${grey},${grey},${grey})`;
          ctx.fillRect((x0 + j * block) * zoom, (y0 + i * block) * zoom, block * zoom, block * zoom);
        }
      }
    }
  }
  if (boxes) {
    ctx.strokeStyle = "#40ccff";
    boxes.forEach(([x0, y0, side], k) => {
      ctx.lineWidth = k === 0 ? 3 : 1.5;
      ctx.strokeRect(x0 * zoom, y0 * zoom, side * zoom, side * zoom);
    });
  }
}

function sensorBoxes(u, v, patch, scales) {
  const cx = Math.floor(u + 0.5);
  const cy = Math.floor(v + 0.5);
  return Array.from({ length: scales }, (_, k) => {
    const side = patch * 2 ** k;
    return [cx - Math.floor(side / 2), cy - Math.floor(side / 2), side];
  });
}

const catchGame = {
  game: null, // the agent's current game (an /api/catch/game answer)
  t: 0,
  timer: null,
  watching: false,
  seed: null,
  tally: { games: 0, caught: 0 },
  human: { game: null, state: null, frame: null, timer: null, gaze: null, held: null, pressed: null, tally: { games: 0, caught: 0 }, busy: false },

  async fetchGame(seedValue) {
    const params = new URLSearchParams({ model: page.catchModel, mode: mode(), seed: seedValue });
    return api(`/api/catch/game?${params}`);
  },

  async showAgent() {
    if (this.game) return this.drawAgent();
    try {
      this.seed = seed();
      this.game = await this.fetchGame(this.seed);
      this.t = 0;
      this.drawAgent();
      this.score();
    } catch (error) {
      showError(error.message);
    }
  },

  drawAgent() {
    const game = this.game;
    const t = Math.min(this.t, game.steps.length);
    const step = game.steps[Math.min(t, game.steps.length - 1)];
    const glimpse = { u: step.x, v: step.y, patch: game.patch_size, scales: game.scales, pool: game.pool };
    drawFrame($("agent"), game.frames[t], { glimpse, boxes: step.boxes, onlySeen: $("agent-eye").checked });
    [...$("agent-move").children].forEach((span, m) => span.classList.toggle("on", t < game.steps.length && m === step.move));
    Object.assign($("agent").dataset, { seed: game.seed, step: t });
  },

  score() {
    const { games, caught } = this.tally;
    const end = this.game && this.t >= this.game.steps.length;
    const line = $("agent-score");
    line.className = "score";
    line.textContent = `game ${this.seed}`;
    if (end) {
      line.textContent += this.game.caught ? ": caught" : ": missed";
      line.classList.add(this.game.caught ? "caught" : "missed");
    }
    if (games) line.textContent += ` — ${caught} of ${games} caught (${percent(caught / games)})`;
  },

  toggleWatch() {
    this.watching = !this.watching;
    $("watch").innerHTML = this.watching ? "&#10074;&#10074; pause" : "&#9654; watch";
    if (this.watching) this.tick();
    else clearTimeout(this.timer);
  },

  async tick() {
    if (!this.watching) return;
    try {
      if (!this.game || this.t >= this.game.steps.length) {
        if (this.game) this.seed += 1;
        else this.seed = seed();
        this.game = await this.fetchGame(this.seed);
        this.t = 0;
      } else {
        this.t += 1;
        if (this.t === this.game.steps.length) {
          this.tally.games += 1;
          this.tally.caught += this.game.caught ? 1 : 0;
        }
      }
      this.drawAgent();
      this.score();
      const pause = this.t === this.game.steps.length ? 1200 : GAME_MS;
      this.timer = setTimeout(() => this.tick(), pause);
    } catch (error) {
      showError(error.message);
      this.toggleWatch();
    }
  },

  // A person's game: the agent's current game from its start, stepped by the server once per tick.
  async playHuman() {
    const human = this.human;
    clearTimeout(human.timer);
    try {
      if (!this.game) await this.showAgent();
      human.game = this.game.seed === this.seed ? this.game : await this.fetchGame(this.seed);
      human.state = human.game.start;
      human.frame = human.game.frames[0];
      human.pressed = null;
      const size = human.game.size;
      human.gaze = human.gaze || { u: size / 2, v: size / 2 };
      $("human-score").textContent = `game ${human.game.seed}: look for the ball, then move`;
      $("human-score").className = "score";
      $("human").focus({ preventScroll: true });
      this.drawHuman();
      human.timer = setTimeout(() => this.humanTick(), Number($("speed").value));
    } catch (error) {
      showError(error.message);
    }
  },

  async humanTick() {
    const human = this.human;
    const move = human.held ?? human.pressed ?? 1;
    human.pressed = null;
    try {
      const next = await api(`/api/catch/step?model=${encodeURIComponent(page.catchModel)}`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ state: human.state, move }),
      });
      human.state = next.state;
      human.frame = next.frame;
      this.drawHuman();
      if (next.done) return this.humanEnd(next.caught);
      human.timer = setTimeout(() => this.humanTick(), Number($("speed").value));
    } catch (error) {
      showError(error.message);
    }
  },

  humanEnd(caught) {
    const human = this.human;
    human.tally.games += 1;
    human.tally.caught += caught ? 1 : 0;
    const { games, caught: total } = human.tally;
    const agent = human.game.caught ? "caught" : "missed";
    const line = $("human-score");
    line.textContent = `you ${caught ? "caught" : "missed"} it (the agent ${agent} it) — you: ${total} of ${games}`;
    line.className = `score ${caught ? "caught" : "missed"}`;
    drawFrame($("human"), human.frame); // the whole screen once the game is over
  },

  drawHuman() {
    const human = this.human;
    if (!human.frame) return;
    const game = human.game;
    const { u, v } = human.gaze;
    drawFrame($("human"), human.frame, {
      glimpse: { u, v, patch: game.patch_size, scales: game.scales, pool: game.pool },
      boxes: sensorBoxes(u, v, game.patch_size, game.scales),
      onlySeen: true,
    });
  },

  setup() {
    $("watch").addEventListener("click", () => this.toggleWatch());
    $("agent-eye").addEventListener("change", () => this.game && this.drawAgent());
    $("play").addEventListener("click", () => this.playHuman());
    const human = $("human");
    human.tabIndex = 0;
    human.addEventListener("pointermove", (event) => {
      if (!this.human.game) return;
      const box = human.getBoundingClientRect();
      const size = this.human.game.size;
      const clamp = (x) => Math.min(size, Math.max(0, x));
      this.human.gaze = {
        u: clamp(((event.clientX - box.left) / box.width) * size),
        v: clamp(((event.clientY - box.top) / box.height) * size),
      };
      if (this.human.timer && this.human.state && this.human.state.row < size - 1) this.drawHuman();
    });
    const keys = { ArrowLeft: 0, ArrowRight: 2 };
    document.addEventListener("keydown", (event) => {
      if ($("catch").hidden || !(event.key in keys)) return;
      event.preventDefault();
      this.human.held = this.human.pressed = keys[event.key];
    });
    document.addEventListener("keyup", (event) => {
      if (event.key in keys && this.human.held === keys[event.key]) this.human.held = null;
    });
    for (const [id, move] of [["left", 0], ["right", 2]]) {
      $(id).addEventListener("pointerdown", () => (this.human.held = this.human.pressed = move));
      for (const up of ["pointerup", "pointerleave", "pointercancel"]) {
        $(id).addEventListener(up, () => this.human.held === move && (this.human.held = null));
      }
    }
  },
};

// ---- start ----------------------------------------------------------------------------------------------------------

async function start() {
  setupPad();
  catchGame.setup();
  $("tab-classify").addEventListener("click", () => showTab("classify"));
  $("tab-catch").addEventListener("click", () => showTab("catch"));
  $("step").addEventListener("input", (event) => {
    clearInterval(classify.timer);
    if (classify.result) classify.draw(Number(event.target.value));
  });
  $("replay").addEventListener("click", () => classify.result && classify.play());
  $("model").addEventListener("change", chooseModel);
  $("seed").addEventListener("change", () => {
    classify.run();
    catchGame.game = null;
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => {
      classify.run();
      catchGame.game = null;
    });
  }
  $("clutter").addEventListener("click", () => {
    $("seed").value = seed() + 1;
    classify.run();
  });
  try {
    const { default: first, models } = await api("/api/models");
    page.models = models;
    for (const model of models) page.byName[model.name] = model;
    const select = $("model");
    for (const model of models.filter((m) => m.task === "classify")) {
      select.add(new Option(model.name, model.name));
    }
    const opening = page.byName[first];
    const agents = models.filter((m) => m.task === "catch").map((m) => m.name);
    page.catchModel = opening.task === "catch" ? first : agents.includes("catch") ? "catch" : agents[0];
    $("tab-catch").hidden = !page.catchModel;
    if (opening.task === "classify") select.value = first;
    chooseModel();
    document.body.dataset.ready = "1";
    if (opening.task === "catch") showTab("catch");
  } catch (error) {
    showError(`the models could not be listed: ${error.message}`);
  }
}

start();
