// @ts-check
const config = {
  title: 'Dock Docs',
  tagline: 'Docs for docks',
  url: 'https://dock.example.com',
  baseUrl: '/',
  presets: [['classic', { blog: { showReadingTime: true } }]],
};
module.exports = config;
