// Beyond Softmax: mark content that is wider than its box (a table, code, an output line) so that
// beyond-softmax.css can show that it scrolls sideways: .bs-scroll-x on the box that scrolls, and
// .bs-more-left / .bs-more-right on the sides where content is hidden.
(function () {
  "use strict";

  // The box that scrolls a table or a <pre> sideways: itself or its nearest such ancestor.
  function scroller(el) {
    for (let box = el; box && !box.classList.contains("bd-article"); box = box.parentElement) {
      const overflow = getComputedStyle(box).overflowX;
      if (overflow === "auto" || overflow === "scroll") return box;
    }
    return null;
  }

  function update(box) {
    const hidden = box.scrollWidth - box.clientWidth;
    const over = hidden > 1;
    box.classList.toggle("bs-scroll-x", over);
    box.classList.toggle("bs-more-left", over && box.scrollLeft > 1);
    box.classList.toggle("bs-more-right", over && box.scrollLeft < hidden - 1);
  }

  let boxes = [];
  function scan() {
    boxes.forEach(update);
  }

  document.addEventListener("DOMContentLoaded", function () {
    const found = new Set();
    document.querySelectorAll(".bd-article table, .bd-article pre").forEach(function (el) {
      const box = scroller(el);
      if (box) found.add(box);
    });
    boxes = Array.from(found);
    boxes.forEach(function (box) {
      box.addEventListener("scroll", function () { update(box); }, { passive: true });
    });
    scan();
    window.addEventListener("resize", scan);
    window.addEventListener("load", scan); // images and fonts change widths
    const mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) mj.startup.promise.then(scan); // so do typeset maths
  });
})();
