package runner

// CSVAhead is csvAhead, for the tests outside the package.
const CSVAhead = csvAhead
