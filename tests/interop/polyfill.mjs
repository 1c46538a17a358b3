// Node 20 polyfills for the @waku/* + libp2p 2.x packages (they declare Node >= 22).
//
// Without Promise.withResolvers, libp2p.start() crashes with
// "Promise.withResolvers is not a function". Import this module FIRST in every
// script (`import "./polyfill.mjs";` as the first import), so it is evaluated
// before any library module body runs.

if (typeof Promise.withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function withResolvers() {
      let resolve;
      let reject;
      const promise = new this((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    }
  });
}
