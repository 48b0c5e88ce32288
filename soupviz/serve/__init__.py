"""What a dashboard server needs and the pages' Streamlit-free support: settings and the specs
pages measure, uploads, background lanes, the soups a page shows as rows, and the insight
pages' runs, views and kept runs."""
