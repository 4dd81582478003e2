"""The semprobe dashboard: a Streamlit app that browses run directories.

``app.dashboard`` is the Streamlit script, ``app.data`` loads run directories (validated and
cached), ``app.compute`` holds the numbers behind the views (numpy, no Streamlit),
``app.figures`` the app's own figures, ``app.launch`` the ``semprobe dashboard`` command and
``app.screenshots`` drives the app in headless Chromium (browser tests, the docs' screenshots).
"""
