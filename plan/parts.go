package plan

// Visitor applies the parts of an image that follow its FROM. Image.Walk
// calls them in the one order every back end follows (the Containerfile
// emitter, the LLB compiler and the build record), so they cannot disagree
// on it.
type Visitor interface {
	// Bootstrap is called for each step of Image.Bootstrap.
	Bootstrap(Step) error
	// Config sets WORKDIR, ENV, PATH and EXPOSE; any of them may be empty.
	Config(Config) error
	// Steps gets Image.Steps at once: a back end groups them by layer or
	// detaches them.
	Steps([]Step) error
	// Lint is Image.Lint, run as root before the final USER; only called
	// for bootc images.
	Lint(Step) error
	// User sets the final USER (Image.FinalUser); not called when it is "".
	User(string) error
}

// Config is the image configuration set after the bootstrap.
type Config struct {
	Workdir    string   // "" keeps the base's
	Env        []EnvVar // sorted by key
	PathAppend []string // prepended to the base's PATH
	Expose     []int
}

// Walk applies img's parts to v in order: bootstrap, config, steps, lint,
// final user.
func (img *Image) Walk(v Visitor) error {
	for _, s := range img.Bootstrap {
		if err := v.Bootstrap(s); err != nil {
			return err
		}
	}
	if err := v.Config(Config{Workdir: img.Workdir, Env: img.Env, PathAppend: img.PathAppend, Expose: img.Expose}); err != nil {
		return err
	}
	if err := v.Steps(img.Steps); err != nil {
		return err
	}
	if img.Lint != nil {
		if err := v.Lint(*img.Lint); err != nil {
			return err
		}
	}
	if img.FinalUser != "" {
		return v.User(img.FinalUser)
	}
	return nil
}
