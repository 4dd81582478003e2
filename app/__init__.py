"""The semprobe dashboard: a Streamlit app that browses run directories.

``semprobe.app.dashboard`` is the Streamlit script, ``semprobe.app.data`` loads run directories (validated and
cached), ``semprobe.app.compute`` holds the numbers behind the views (numpy, no Streamlit),
``semprobe.app.figures`` the app's own figures, ``semprobe.app.launch`` the ``semprobe dashboard`` command and
``semprobe.app.screenshots`` drives the app in headless Chromium (browser tests, the docs' screenshots).
"""
