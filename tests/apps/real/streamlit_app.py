"""Streamlit app for trioproxy's recipe tests: `streamlit run streamlit_app.py`.

A title, and a button: a click reruns this script on the server (over Streamlit's
websocket, ``_stcore/stream``) and shows the result.
"""

import streamlit as st

st.title("trioproxy streamlit test")
st.write("hello from streamlit")
if st.button("Compute"):
    st.write(f"streamlit computed {6 * 7}")
