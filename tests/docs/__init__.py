"""Tests that hold the documentation to the code: component option tables, the README's shape, wording."""
