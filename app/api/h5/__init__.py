"""Platform parts of the students' H5 pages: the signed-token credential, upload limits and
content checks, the storage the pages use. The pages themselves live with their capability
(`bots/student_page/pages.py`)."""
