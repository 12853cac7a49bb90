// The CLI tests spawn the built `bin/keyward.js`; make sure dist/ matches the sources.
module.exports = async () => {
  require('../../scripts/build-if-stale.js');
};
