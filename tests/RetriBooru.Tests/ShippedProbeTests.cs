using RetriBooru.Experiments;
using RetriBooru.Metrics;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>The attribute probe of new characters shipped with the library for the quickstart (models/probe-world).</summary>
public class ShippedProbeTests
{
    /// <summary>The quickstart's world-probe key on the 2-core machine its probe was trained on (the spec's seed, 32 px, 2 threads).</summary>
    static string QuickstartKey()
    {
        var spec = SpecLoader.Load(Path.Combine(RepoPaths.Root, "experiments", "quickstart.json"));
        var suite = spec.Evaluate.Suite();
        return EvaluationProbe.WorldKey(EvaluationProbe.SynthSchema(), spec.Dataset.Size, suite.ImageSize, suite.Probe with { Seed = spec.Seed },
            suite.ProbeWorldPictures, threads: 2);
    }

    [Fact]
    public void The_quickstarts_probe_is_shipped_under_its_full_key()
    {
        // Fails when the protocol, the schema, the probe's options or the quickstart's evaluation settings change without
        // a new probe in models/probe-world (docs/metrics.md): a fresh quickstart would then train it again (correct, slower).
        var key = QuickstartKey();
        Assert.Contains(key[..16], EvaluationProbe.ShippedKeys);
        var shipped = EvaluationProbe.ShippedWorld(key, shared: null, notes: []);
        Assert.NotNull(shipped);
        using var probe = shipped.Value.Probe.Probe;
        Assert.Equal(4000, shipped.Value.Probe.TrainCount);
        Assert.StartsWith("the library (built-in probe-world/", shipped.Value.From);
    }

    [Fact]
    public void The_shipped_probe_reads_pictures_it_never_saw_and_is_copied_into_the_shared_cache()
    {
        var key = QuickstartKey();
        using var temp = new TempDir();
        var shared = temp.File(key[..16]);
        var notes = new List<string>();
        var shipped = EvaluationProbe.ShippedWorld(key, shared, notes);
        Assert.NotNull(shipped);
        using var probe = shipped.Value.Probe.Probe;
        Assert.Empty(notes);
        // Copied whole: the next lookup finds it in the cache and nothing is left beside it.
        using (var again = EvaluationProbe.TryLoadWorld(shared, key)?.Probe) Assert.NotNull(again);
        Assert.Equal([shared], Directory.GetDirectories(temp.Path));
        // Pictures of other new characters (a seed its world did not use): it reads hair colour and background well above chance.
        var schema = EvaluationProbe.SynthSchema();
        using var pictures = EvaluationProbe.RenderWorld(96, 32, 32, seed: 424242, schema);
        var accuracy = probe.Accuracy(pictures.Samples);
        Assert.True(accuracy["hair_color"] > 0.6, $"hair colour {accuracy["hair_color"]:F3} (chance 0.125)");
        Assert.True(accuracy["background"] > 0.6, $"background {accuracy["background"]:F3}");
        // Another key with the same first digits is not taken for it.
        var other = key[..16] + new string('0', key.Length - 16);
        Assert.Null(EvaluationProbe.ShippedWorld(other, temp.File("other"), notes));
        Assert.False(Directory.Exists(temp.File("other")));
        Assert.Equal([shared], Directory.GetDirectories(temp.Path));
    }
}
