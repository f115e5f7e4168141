import streamlit as st

st.title("trioproxy streamlit test")
st.write("hello from streamlit")
