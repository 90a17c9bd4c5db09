"""Sphinx configuration of the gilonce API reference: Doxygen XML of reference/include,
rendered by Breathe. tools/build_docs.py runs it with -W (warnings are errors) and passes
the XML folder as -D breathe_projects.gilonce=<dir>. The pages are published under /api/
of the mkdocs site and link back to it."""
project = "gilonce"
author = "gilonce authors"
copyright = "2026, gilonce authors"
extensions = ["breathe"]
breathe_projects = {"gilonce": "../../build/docs/doxygen/xml"}  # overridden by the build
breathe_default_project = "gilonce"
breathe_default_members = ("members",)
primary_domain = "cpp"
highlight_language = "cpp"
html_theme = "alabaster"
html_title = "gilonce API reference"
html_theme_options = {
    "description": "Sound lazy initialization for CPython extensions",
    "extra_nav_links": {"Back to the course": "../index.html"},
    "show_powered_by": False,
}
html_static_path = ["_static"]
html_css_files = ["course.css"]  # the course site's colours and fonts
html_favicon = "../assets/favicon.svg"  # the course site's own icon
templates_path = []
exclude_patterns = ["Doxyfile"]
