// One state store per page: named slices, set as a whole, and views subscribed to the
// slices they show. Notifications are folded into one per slice and animation frame, so
// a burst of events re-renders each view once.

export function createStore(initial) {
  const state = { ...initial };
  const subs = new Map(); // slice -> Set<fn>
  const dirty = new Set();
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const slices = [...dirty];
    dirty.clear();
    const called = new Set();
    for (const s of slices) {
      for (const f of subs.get(s) || []) {
        if (called.has(f)) continue;
        called.add(f);
        try {
          f(state);
        } catch (e) {
          console.error("view", s, e);
        }
      }
    }
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    // requestAnimationFrame does not run in a hidden tab; a timeout does.
    (document.hidden ? (f) => setTimeout(f, 50) : requestAnimationFrame)(flush);
  };
  return {
    state,
    /** Replaces slices: set({incidents: m}); views of those slices re-render. */
    set(patch) {
      for (const [k, v] of Object.entries(patch)) {
        state[k] = v;
        dirty.add(k);
      }
      schedule();
    },
    /** Marks slices changed after changing them in place. */
    touch(...slices) {
      for (const s of slices) dirty.add(s);
      schedule();
    },
    /** Calls `f(state)` whenever one of `slices` changes. */
    subscribe(slices, f) {
      for (const s of slices) {
        if (!subs.has(s)) subs.set(s, new Set());
        subs.get(s).add(f);
      }
    },
  };
}
