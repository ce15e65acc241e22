package sim

func (s *Sim) capture(link string) error { return nil }
