"""Reports for mapped scenes: the HTML page and its figures."""
