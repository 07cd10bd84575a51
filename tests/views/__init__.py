"""views: report, review page, export."""
