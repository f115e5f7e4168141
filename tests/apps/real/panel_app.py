import panel as pn

pn.panel("# trioproxy panel test").servable()
