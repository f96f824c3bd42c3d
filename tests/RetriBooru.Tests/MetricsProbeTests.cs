using RetriBooru.Metrics;
using RetriBooru.Metrics.Vqa;
using Xunit;
using Xunit.Abstractions;

namespace RetriBooru.Tests;

[Collection(MetricsProbeCollection.Name)]
public class MetricsProbeTests(MetricsProbeFixture fixture, ITestOutputHelper output)
{
    [Fact]
    public void Probe_learns_drawn_attributes_and_reports_held_out_accuracy()
    {
        var report = fixture.Report;
        output.WriteLine(string.Join(", ", report.HeldOutAccuracy.Select(kv => $"{kv.Key} {kv.Value:F3}")) + $"; loss {report.FinalTrainLoss:F3}");
        Assert.Equal(64, report.HeldOutCount);
        Assert.Equal(256, report.TrainCount);
        Assert.Equal(MetricsProbeFixture.Schema.Attributes.Select(a => a.Name), report.HeldOutAccuracy.Keys);
        // Chance is 1/4 .. 1/2 per attribute; a working probe is far above it on images it never saw.
        Assert.True(report.MeanHeldOutAccuracy > 0.8, $"mean held-out accuracy {report.MeanHeldOutAccuracy}");
    }

    [Fact]
    public void Probe_answers_questions_in_words_and_skips_questions_it_does_not_know()
    {
        var scene = MetricsShapeWorld.RandomScene(new("blue", "orange", false), new Random(99)) with { Background = "checker", Pose = "left", Arms = "up" };
        using var drawn = MetricsShapeWorld.Draw(scene, 64);
        var answers = fixture.Probe.Ask(drawn.Image, VqaQuestions.Default);
        Assert.Equal(["background", "pose", "clothing", "hair"], answers.Select(a => a.QuestionId));
        Assert.All(answers, a => Assert.Contains(a.Answer, MetricsProbeFixture.Schema[a.QuestionId].Values));
        Assert.False(fixture.Probe.CanAnswer(VqaQuestions.Expression));
        var prediction = fixture.Probe.Predict(drawn.Image);
        Assert.Equal("blue", prediction["hair"]);
        Assert.Equal("checker", prediction["background"]);
    }

    [Fact]
    public void Probe_round_trips_through_save_and_load()
    {
        using var dir = new TempDir();
        fixture.Probe.Save(dir.Path);
        using var loaded = AttributeProbe.Load(dir.Path);
        var rng = new Random(4);
        for (int i = 0; i < 5; i++)
        {
            using var drawn = MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(MetricsShapeWorld.RandomCharacter(rng), rng), 64);
            Assert.Equal(fixture.Probe.Predict(drawn.Image), loaded.Predict(drawn.Image));
        }
        Assert.Equal("hair", loaded.Schema.Attributes[0].Name);
        Assert.Equal("red_hair", loaded.Schema["hair"].TagOf("red"));
    }

    [Fact]
    public void Probe_training_is_reproducible_for_a_seed()
    {
        var rng = new Random(12);
        var samples = Enumerable.Range(0, 24).Select(i =>
        {
            var scene = MetricsShapeWorld.RandomScene(MetricsShapeWorld.RandomCharacter(rng), rng);
            using var drawn = MetricsShapeWorld.Draw(scene, 32);
            return new ProbeSample(drawn.Image.Copy(), scene.Attributes);
        }).ToList();
        var options = new AttributeProbeOptions { Epochs = 2, ImageSize = 32, Seed = 3 };
        var (a, reportA) = AttributeProbe.Train(MetricsProbeFixture.Schema, samples, options);
        var (b, reportB) = AttributeProbe.Train(MetricsProbeFixture.Schema, samples, options);
        var (c, reportC) = AttributeProbe.Train(MetricsProbeFixture.Schema, samples, options with { Seed = 4 });
        Assert.Equal(reportA.FinalTrainLoss, reportB.FinalTrainLoss);
        Assert.Equal(reportA.HeldOutAccuracy, reportB.HeldOutAccuracy);
        Assert.NotEqual(reportA.FinalTrainLoss, reportC.FinalTrainLoss);
        foreach (var p in new[] { a, b, c }) p.Dispose();
        samples.ForEach(s => s.Image.Dispose());
    }

    [Fact]
    public void Probe_scores_the_held_out_pictures_it_is_given_and_shifts_and_mirrors_reproducibly()
    {
        var rng = new Random(21);
        List<ProbeSample> Draw(int count) => Enumerable.Range(0, count).Select(i =>
        {
            var scene = MetricsShapeWorld.RandomScene(MetricsShapeWorld.RandomCharacter(rng), rng);
            using var drawn = MetricsShapeWorld.Draw(scene, 32);
            return new ProbeSample(drawn.Image.Copy(), scene.Attributes);
        }).ToList();
        var training = Draw(24);
        var heldOut = Draw(10);
        var options = new AttributeProbeOptions { Epochs = 2, ImageSize = 32, Seed = 3, ShiftPixels = 2, Mirror = true };
        var (a, reportA) = AttributeProbe.Train(MetricsProbeFixture.Schema, training, heldOut, options);
        var (b, reportB) = AttributeProbe.Train(MetricsProbeFixture.Schema, training, heldOut, options);
        var (c, reportC) = AttributeProbe.Train(MetricsProbeFixture.Schema, training, heldOut, options with { ShiftPixels = 0, Mirror = false });
        Assert.Equal((24, 10), (reportA.TrainCount, reportA.HeldOutCount));
        Assert.Equal(reportA.FinalTrainLoss, reportB.FinalTrainLoss);
        Assert.Equal(a.Fingerprint(), b.Fingerprint());
        // The augmentation changes what the probe trains on, so the same seed without it ends elsewhere.
        Assert.NotEqual(reportA.FinalTrainLoss, reportC.FinalTrainLoss);
        Assert.All(reportA.HeldOutAccuracy.Values, v => Assert.Equal(0, v * 10 % 1, 9)); // a share of 10 pictures
        var error = Assert.Throws<ArgumentException>(() => AttributeProbe.Train(MetricsProbeFixture.Schema, training, heldOut, options with { ShiftPixels = 9 }));
        Assert.Contains("shift must be 0..8 px", error.Message);
        Assert.Throws<ArgumentException>(() => AttributeProbe.Train(MetricsProbeFixture.Schema, training, [], options));
        foreach (var p in new[] { a, b, c }) p.Dispose();
        training.Concat(heldOut).ToList().ForEach(s => s.Image.Dispose());
    }

    [Fact]
    public void Probe_rejects_a_sample_whose_value_is_outside_the_vocabulary_naming_it()
    {
        var rng = new Random(1);
        var samples = Enumerable.Range(0, 6).Select(i =>
        {
            using var drawn = MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(MetricsShapeWorld.RandomCharacter(rng), rng), 32);
            var attributes = new Dictionary<string, string>(drawn.Image.Width > 0 ? MetricsShapeWorld.RandomScene(new("red", "white", true), rng).Attributes : []);
            if (i == 3) attributes["hair"] = "silver";
            return new ProbeSample(drawn.Image.Copy(), attributes, $"img-{i}.png");
        }).ToList();
        var error = Assert.Throws<ArgumentException>(() => AttributeProbe.Train(MetricsProbeFixture.Schema, samples, new AttributeProbeOptions { Epochs = 1 }));
        Assert.Contains("img-3.png", error.Message);
        Assert.Contains("silver", error.Message);
    }
}
