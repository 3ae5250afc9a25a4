"""Keyword Q&A (问答): rules matched against members' questions to the app, answered as a
passive reply or an app message; the FAQ search the student page uses."""
