"""views: read models for people: the report, the review page, exports, the plan outlook.

Views read the store and the output folder; they never print (the CLI does)."""
