using RetriBooru.Diffusion;
using RetriBooru.Experiments;
using RetriBooru.Modeling;
using RetriBooru.Runtime;
using Xunit;
using static TorchSharp.torch;

namespace RetriBooru.Tests;

public class ReferenceDropoutEachTests(SmallReferenceWorld world) : IClassFixture<SmallReferenceWorld>
{
    static ReferenceBatch Batch(long batch, long count, Func<long, long, bool> present)
    {
        var mask = new bool[batch * count];
        for (long i = 0; i < batch; i++) for (long j = 0; j < count; j++) mask[i * count + j] = present(i, j);
        return new ReferenceBatch(zeros([batch, count, 3, 4, 4]), zeros([batch, count, 2, 5]), tensor(mask).reshape(batch, count));
    }

    [Fact]
    public void Each_slot_is_dropped_on_its_own_padding_stays_absent_and_the_same_generator_gives_the_same_mask()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        // 400 samples of 4 slots; the last slot of every other sample is padding.
        var batch = Batch(400, 4, (i, j) => j < 3 || i % 2 == 0);
        using var a = Seeding.TorchGenerator(5, "drop-each-test");
        using var b = Seeding.TorchGenerator(5, "drop-each-test");
        var dropped = batch.DropEach(0.5, a);
        var kept = dropped.Present.to(ScalarType.Int64);
        Assert.Equal(dropped.Present.data<bool>().ToArray(), batch.DropEach(0.5, b).Present.data<bool>().ToArray());
        Assert.False(dropped.Present.logical_and(batch.Present.logical_not()).any().item<bool>(), "a padding slot became present");
        double keptShare = kept.sum().item<long>() / (double)batch.Present.to(ScalarType.Int64).sum().item<long>();
        Assert.InRange(keptShare, 0.42, 0.58);
        // Independent per slot: many samples keep some of their references but not all (whole-sample dropout never does).
        var perSample = kept.sum(1).data<long>().ToArray();
        var available = batch.Present.to(ScalarType.Int64).sum(1).data<long>().ToArray();
        int partial = perSample.Zip(available).Count(p => p.First > 0 && p.First < p.Second);
        Assert.True(partial > 200, $"only {partial} of 400 samples kept part of their references");
        Assert.Equal(0, batch.DropWhole(0.5, a).Present.to(ScalarType.Int64).sum(1).data<long>().ToArray()
            .Zip(available).Count(p => p.First > 0 && p.First < p.Second));
    }

    [Fact]
    public void Probability_0_draws_nothing_and_out_of_range_values_are_refused()
    {
        Torch.Load();
        using var scope = NewDisposeScope();
        var batch = Batch(3, 4, (_, _) => true);
        using var a = Seeding.TorchGenerator(9, "drop-each-test");
        using var b = Seeding.TorchGenerator(9, "drop-each-test");
        Assert.Same(batch, batch.DropEach(0, a));
        Assert.Equal(rand(4, generator: b).data<float>().ToArray(), rand(4, generator: a).data<float>().ToArray());
        var problems = new ReferenceTrainingOptions { ReferenceDropoutEach = 0.96 }.Problems(f => "train." + f.JsonName);
        Assert.Contains(problems, p => p.StartsWith("train.reference_dropout_each: 0.96"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReferenceTrainingOptions { ReferenceDropoutEach = -0.1 }.Validate());
    }

    [Fact]
    public void Off_it_leaves_the_stage_key_and_the_losses_unchanged_and_on_it_changes_the_losses()
    {
        Assert.DoesNotContain("reference_dropout_each", System.Text.Json.JsonSerializer.Serialize(new ReferenceTrainingOptions(), Data.WorkbenchJson.Lines));
        world.AssertOffChangesNothingAndOnChangesTheLosses(new ReferenceTrainingOptions { ReferenceDropoutEach = 0 }, new ReferenceTrainingOptions { ReferenceDropoutEach = 0.5 });
    }
}
