"""The duty console: a web console for agencies' staff (live board, alert cards, answers,
worklists) and a report form for grassroots reporters, served by the bus itself (issue #21)."""
