"""The semprobe dashboard: a Streamlit app that browses run directories.

``semprobe.app.dashboard`` is the Streamlit script; it dispatches to one module per view in
``semprobe.app.views``, which share ``semprobe.app.page`` (opening runs, the sidebar, error
display). ``semprobe.app.data`` loads run directories (validated and cached),
``semprobe.app.compute`` arranges the library's numbers for the views (numpy, no Streamlit),
``semprobe.app.figures`` holds the app's own figures, ``semprobe.app.launch`` the
``semprobe dashboard`` command, and ``semprobe.app.screenshots`` drives the app in headless
Chromium (browser tests, the docs' screenshots).
"""
