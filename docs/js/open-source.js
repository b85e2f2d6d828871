// The algorithms page shows each equation's code beside it, not behind a click.
document$.subscribe(() => {
  for (const source of document.querySelectorAll("details.mkdocstrings-source")) {
    source.open = true;
  }
});
