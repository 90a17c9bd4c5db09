// Opened from disk (file://), every page and link works, but browsers refuse to start the
// search's web worker: say so where the reader looks for search, with the command that serves it.
if (window.location.protocol === "file:") {
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.querySelector("input.md-search__input");
    if (box) {
      box.placeholder = "Search needs a server: python3 -m http.server -d build/site";
      box.title = "Browsers do not run the search from file://. Serve the site: " +
                  "python3 -m http.server -d build/site, then open http://localhost:8000/";
    }
  });
}
