"""The web app served at /: server-rendered pages for people."""
